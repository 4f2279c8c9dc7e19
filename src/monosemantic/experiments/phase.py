"""Superposition as a phase change (Elhage et al. 2022), on sweeps.

- n=2, m=1: which of feature 1, feature 2 or both (an antipodal pair) the trained model keeps, over
  relative importance r and density s, against the closed-form boundary of toy/theory.py
  (three ideal layouts compared by their losses).
- uniform importance (n=200, m=20 by default): dimensions per feature D* against 1/(1-S), sticky
  at 1/2 (antipodal pairs), and the feature dimensionalities D_i with the paper's fractions.
- sharp transitions: along any sweep axis, where a feature switches on or off, its D_i jumps, or
  the geometry changes, between neighbouring points.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from monosemantic.errors import InputError
import monosemantic.measures as measures
from monosemantic.runs import check_output_path, figure_file, read_run, write_run
from monosemantic.measures import FRACTIONS
from monosemantic.toy.theory import (BOTH, LABELS, NEITHER, ONLY_1, ONLY_2, SHARED, analytic_labels, boundary_curves,
                                     ideal_losses, n2m1_labels)
from monosemantic.experiments.sweeps import (SweepSpec, axes, parse_spec, point_dir, record, records_of, run_sweep,
                                            train_spec, transitions)

HALF_TOL = 0.03  # the 1/2 plateau's mean D* lies within 0.03 of 1/2
PLATEAU_FLATNESS = 0.25  # a plateau's slope is under a quarter of the slope on either side
MIN_PLATEAU_LEVELS = 5


# ---- n = 2, m = 1 ----

def far_from_boundary(analytic: np.ndarray) -> np.ndarray:
    """Bool [R, S]: the analytic label is the same on every grid neighbour (one step, diagonals too),
    i.e. the point is more than one grid step from the boundary."""
    R, S = analytic.shape
    far = np.ones_like(analytic, dtype=bool)
    for dr in (-1, 0, 1):
        for ds in (-1, 0, 1):
            shifted = np.full((R + 2, S + 2), -9)
            shifted[1:-1, 1:-1] = analytic
            far &= (shifted[1 + dr : R + 1 + dr, 1 + ds : S + 1 + ds] == analytic) | (
                shifted[1 + dr : R + 1 + dr, 1 + ds : S + 1 + ds] == -9)
    return far


def n2m1_spec(grid: int = 20, steps: int = 10_000, seeds: int = 0, candidates: bool = True, seed: int = 0,
              r_range=(0.1, 10.0), density_range=(1.0, 0.01), max_group_points: int = 256) -> SweepSpec:
    """The phase-diagram sweep: importance_ratio r (rows) x density (columns), both log-spaced.

    Plain training from random starts often stays in a one-feature minimum inside the superposition
    phase, so by default each point starts from each of the three
    ideal layouts (slightly perturbed) and keeps the lowest loss.
    """
    return parse_spec({
        "name": "phase-n2m1", "seed": seed, "max_group_points": max_group_points,
        "base": {"model": "relu-output", "n": 2, "m": 1, "steps": steps, "seeds": seeds, "candidates": candidates},
        "grid": {"importance_ratio": {"logspace": [r_range[0], r_range[1], grid]},
                 "density": {"logspace": [density_range[0], density_range[1], grid]}},
    })


def n2m1_analyse(r: list[float], s: list[float], W: torch.Tensor, loss: list[float] | None = None) -> dict:
    """Labels against the analytic diagram. W: [len(r) * len(s), 1, 2], r-major (the spec's grid order)."""
    R, S = len(r), len(s)
    labels = n2m1_labels(W).reshape(R, S)
    analytic = analytic_labels(np.asarray(r)[:, None], np.asarray(s)[None, :])
    far = far_from_boundary(analytic)
    agree = labels == analytic
    norms = measures.feature_norms(W).numpy().reshape(R, S, 2)
    cos = measures.cosines(W)[:, 0, 1].numpy().reshape(R, S)
    departures = [{"r": r[i], "density": s[j], "trained": LABELS[int(labels[i, j])],
                   "analytic": LABELS[int(analytic[i, j])], "far_from_boundary": bool(far[i, j]),
                   "norms": norms[i, j].tolist(), "cos": float(cos[i, j])}
                  for i in range(R) for j in range(S) if not agree[i, j]]
    i1 = int(np.argmin(np.abs(np.log(np.asarray(r)))))  # the row nearest r = 1
    return {
        "r": list(r), "density": list(s), "labels": labels.tolist(), "analytic": analytic.tolist(),
        "agreement_far": float(agree[far].mean()) if far.any() else None, "far_points": int(far.sum()),
        "agreement_all": float(agree.mean()), "departures": departures,
        "near_r1": {"r": r[i1], "density": list(s), "norms": norms[i1].tolist(), "cos": cos[i1].tolist()},
        "loss": loss,
        "norms": norms.tolist(),
    }


def _kept_W(results: list[dict]) -> torch.Tensor:
    return torch.cat([torch.tensor(res["tensors"]["W"]) for res in results])


def n2m1(grid: int = 20, steps: int = 10_000, seeds: int = 0, candidates: bool = True, seed: int = 0,
         workers: int = 1) -> dict:
    """Train the phase diagram in memory and analyse it (plus the transitions along density)."""
    spec = n2m1_spec(grid, steps, seeds, candidates, seed, max_group_points=-(-grid * grid // max(1, workers)))
    points, results = train_spec(spec, workers)
    ax = axes(spec)
    out = n2m1_analyse(ax["importance_ratio"], ax["density"], _kept_W(results), [x["result"]["loss"] for x in results])
    out["transitions"] = transitions(records_of(points, results), ["density"])
    out["config"] = spec.model_dump(mode="json")
    out["wall_s"] = sum(x["result"]["wall_s"] for x in results)
    return out


# ---- uniform importance: dimensions per feature ----

def notebook_densities(levels: int = 20, ks: list[int] | None = None) -> list[float]:
    """The notebook's grid, feature probability 20^(-k/(levels-1)) for k = 0..levels-1 (or the given ks)."""
    return [20.0 ** (-k / (levels - 1)) for k in (range(levels) if ks is None else ks)]


def uniform_spec(n: int = 200, m: int = 20, levels: int = 20, steps: int = 10_000, seeds: int = 1, seed: int = 0,
                 max_group_points: int = 256, ks: list[int] | None = None) -> SweepSpec:
    """Uniform importance on the notebook's density grid (a level's numbers do not depend on which other
    levels are trained, so `ks` picks a slice of it)."""
    return parse_spec({
        "name": "uniform-dstar", "seed": seed, "max_group_points": max_group_points,
        "base": {"model": "relu-output", "n": n, "m": m, "steps": steps, "seeds": seeds},
        "grid": {"density": notebook_densities(levels, ks)},
    })


def plateaus(inv_density: list[float], dstar: list[float], flatness: float = PLATEAU_FLATNESS) -> list[list[int]]:
    """Every plateau of D* against log 1/(1-S), as [first, last] level indices.

    A plateau is a run of at least three levels with levels outside it on both sides, whose slope (end to end,
    against log 1/(1-S)) is under `flatness` times the mean slope on either side of it (from the grid's first
    level to the run's first, and from the run's last to the grid's last). A smooth fall has no such run: its
    slope would have to dip below both flanks. Raises InputError on fewer than MIN_PLATEAU_LEVELS levels.
    """
    if len(inv_density) < MIN_PLATEAU_LEVELS or len(dstar) != len(inv_density):
        raise InputError(f"a plateau needs a grid of at least {MIN_PLATEAU_LEVELS} sparsity levels "
                         f"(a flank, three plateau levels, a flank), got {len(inv_density)}")
    x, d = np.log(np.asarray(inv_density, float)), np.asarray(dstar, float)

    def slope(a, b):
        return abs(d[b] - d[a]) / max(abs(x[b] - x[a]), 1e-12)

    last = len(x) - 1
    return [[a, b] for a in range(1, last) for b in range(a + 2, last)
            if slope(a, b) < flatness * min(slope(0, a), slope(b, last))]


def half_plateau(inv_density: list[float], dstar: list[float], tol: float = HALF_TOL):
    """[first, last] 1/(1-S) of the longest plateau (`plateaus`) whose mean D* lies within tol of 1/2;
    None when there is none."""
    runs = [(a, b) for a, b in plateaus(inv_density, dstar) if abs(np.mean(dstar[a:b + 1]) - 0.5) < tol]
    if not runs:
        return None
    a, b = max(runs, key=lambda r: (r[1] - r[0], -abs(dstar[r[1]] - dstar[r[0]])))
    return [inv_density[a], inv_density[b]]


def geometry_by_level(W: torch.Tensor, eps: float = measures.FACTOR_EPS) -> list[dict]:
    """Per level (W: [levels, m, n]): the fraction of represented features on a named energy level, the
    polytopes of the tegum factors (counts), and each feature's polytope (None when not represented)."""
    out = []
    for w in W:
        g = measures.geometry_levels(w, eps)
        poly: list[str | None] = [None] * w.shape[1]
        for f in g["factors"]:
            for i in f["features"]:
                poly[i] = f["polytope"]
        out.append({"on_named_level": g["on_named_level"], "polytopes": g["polytopes"], "feature_polytope": poly})
    return out


def uniform_analyse(density: list[float], W: torch.Tensor, eps: float = measures.FACTOR_EPS) -> dict:
    """D* and D_i per level, the plateaus of D*, and the geometry (tegum factors, energy levels). W: [levels, m, n]."""
    dstar = measures.dims_per_feature(W).tolist()
    inv = [1 / d for d in density]
    D = measures.feature_dimensionality(W)
    return {"density": list(density), "inv_density": inv, "dstar": dstar,
            "sum_D": D.sum(1).tolist(),  # = m when every hidden dimension is used
            "D": D.tolist(), "half_plateau": half_plateau(inv, dstar),
            "plateaus": [[inv[a], inv[b]] for a, b in plateaus(inv, dstar)],
            "half_levels": [x for x, d in zip(inv, dstar) if abs(d - 0.5) < HALF_TOL], "half_tol": HALF_TOL,
            "geometry": geometry_by_level(W, eps), "epsilon": eps}


def uniform(n: int = 200, m: int = 20, levels: int = 20, steps: int = 10_000, seeds: int = 1, seed: int = 0,
            workers: int = 1, ks: list[int] | None = None) -> dict:
    count = levels if ks is None else len(ks)
    spec = uniform_spec(n, m, levels, steps, seeds, seed, -(-count // max(1, workers)), ks)
    points, results = train_spec(spec, workers)
    out = uniform_analyse(spec.grid["density"], _kept_W(results))
    out["transitions"] = transitions(records_of(points, results), ["density"])
    out["loss"] = [x["result"]["loss"] for x in results]
    out["config"] = spec.model_dump(mode="json")
    out["wall_s"] = sum(x["result"]["wall_s"] for x in results)
    return out


# ---- as run directories (the CLI): a resumable sweep in OUT/sweep, the analysis in OUT/diagram ----

def phase_run(kind: str, spec: SweepSpec, out: str | Path, backend: str = "local", workers: int | None = None,
              ray_address: str | None = None, progress: bool = False, draw=None, device: str = "cpu",
              eps: float = measures.FACTOR_EPS) -> dict:
    """kind "n2m1" or "uniform": run (or finish) the sweep, then write OUT/diagram (config.json, result.json,
    diagram.safetensors and, with `draw` (result -> matplotlib figure), KIND.png). Returns the result."""
    out = check_output_path(out)  # '' would put sweep/ and diagram/ in the working directory
    measures.check_epsilon(eps)  # before training
    meta = run_sweep(spec, out / "sweep", backend, workers, ray_address, progress, device=device)
    W = torch.cat([read_run(point_dir(out / "sweep", i))[2]["W"] for i in range(meta["points"])])
    if kind == "n2m1":
        res = n2m1_analyse(*axes(spec).values(), W)
        tensors = {"labels": torch.tensor(res["labels"]), "analytic": torch.tensor(res["analytic"]),
                   "norms": torch.tensor(res["norms"])}
    else:
        res = uniform_analyse(list(spec.grid["density"]), W, eps)
        tensors = {"dstar": torch.tensor(res["dstar"]), "D": torch.tensor(res["D"])}
    res["transitions"] = meta["transitions"]
    res["wall_s"] = meta["wall_s"]
    write_run(out / "diagram", {"kind": f"phase-{kind}", "sweep": str(out / "sweep"),
                                "spec": spec.model_dump(mode="json")}, res, {"diagram": tensors}, overwrite=True,
              extra_files={f"{kind}.png": figure_file(draw(res))} if draw else None)
    return res


# ---- the report's section ----

def demo(quick: bool, progress: bool) -> dict:
    """The report's phase results, sized for the demo's budget (< 45 s on 2 quiet cores): the full settings
    (20 x 20 at 10k steps; n=200, m=20 at 10k steps) are `monosemantic phase n2m1` and `phase uniform`. n=100,
    m=10 at 2,000 steps shows the 1/2 plateau here (measured: D* 0.517, 0.516 at 1/(1-S) = 3.0, 3.5)."""
    workers = 1 if quick else min(2, os.cpu_count() or 1)  # quick: no worker start-up
    grid, steps = (6, 400) if quick else (14, 2000)
    un, um, ulevels, usteps = (50, 5, 10, 300) if quick else (100, 10, 20, 2000)
    return {"n2m1": n2m1(grid=grid, steps=steps, workers=workers),
            "uniform": uniform(n=un, m=um, levels=ulevels, steps=usteps, seeds=1, workers=workers),
            "grid": grid, "steps": steps, "un": un, "um": um, "ulevels": ulevels, "usteps": usteps}
