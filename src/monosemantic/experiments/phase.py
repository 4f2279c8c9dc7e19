"""Superposition as a phase change (Elhage et al. 2022), on sweeps.

- n=2, m=1: which of feature 1, feature 2 or both (an antipodal pair) the trained model keeps, over
  relative importance r and density s, against the closed-form boundary of ../shared/README.md
  section 3 (three ideal layouts compared by their losses).
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

import monosemantic.measures as measures
from monosemantic.experiments.sweeps import SweepSpec, axes, parse_spec, point_dir, record, run_sweep, train_spec

NEITHER, ONLY_1, ONLY_2, BOTH = -1, 0, 1, 2
LABELS = {NEITHER: "neither", ONLY_1: "feature 1 only", ONLY_2: "feature 2 only", BOTH: "both (superposition)"}
FRACTIONS = (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8, 0)  # the paper's lines for D_i
HALF_TOL = 0.03  # "D* within 0.03 of 1/2" (the test)
D_JUMP = 0.15  # a D_i step larger than this between neighbours is a transition (1/2 -> 1/3 is 0.17)


# ---- n = 2, m = 1 ----

def ideal_losses(r, s) -> np.ndarray:
    """Losses of the three ideal layouts [feature 1 only, feature 2 only, antipodal pair]: [..., 3].

    Feature 1 has importance 1, feature 2 importance r, both density s: W = [1, 0] loses feature 2's
    variance r (s/3 - s^2/4); W = [0, 1] loses s/3 - s^2/4; W = [1, -1] interferes only when both are on,
    (1 + r) s^2 / 6.
    """
    r, s = np.broadcast_arrays(np.asarray(r, float), np.asarray(s, float))
    lone = s / 3 - s**2 / 4
    return np.stack([r * lone, lone, (1 + r) * s**2 / 6], axis=-1)


def analytic_labels(r, s) -> np.ndarray:
    """ONLY_1, ONLY_2 or BOTH: the ideal layout of least loss (superposition below s = 4r/(2+5r), r <= 1,
    and s = 4/(5+2r), r >= 1)."""
    return np.argmin(ideal_losses(r, s), axis=-1)


def boundary_curves(r_lo: float, r_hi: float, num: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    """The analytic phase boundaries as (r, s) polylines: superposition's lower edge and the r = 1 line."""
    r1 = np.geomspace(min(r_lo, 1), 1, num)
    r2 = np.geomspace(1, max(r_hi, 1), num)
    return [(r1, 4 * r1 / (2 + 5 * r1)), (r2, 4 / (5 + 2 * r2)), (np.array([1.0, 1.0]), np.array([4 / 7, 1.0]))]


def n2m1_labels(W: torch.Tensor) -> np.ndarray:
    """Label each trained W: [points, 1, 2] by its represented features (norm > 0.5)."""
    rep = measures.represented(W).numpy()
    return np.where(rep[:, 0] & rep[:, 1], BOTH, np.where(rep[:, 0], ONLY_1, np.where(rep[:, 1], ONLY_2, NEITHER)))


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
    phase (../shared/README.md section 3), so by default each point starts from each of the three
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


def half_plateau(inv_density: list[float], dstar: list[float], tol: float = HALF_TOL, min_levels: int = 2):
    """[first, last] 1/(1-S) of the longest run of consecutive levels with |D* - 1/2| < tol, if it has at
    least `min_levels` levels; else None."""
    best, run = None, []
    for x, d in zip(inv_density, dstar):
        run = run + [x] if abs(d - 0.5) < tol else []
        if len(run) >= min_levels and (best is None or len(run) > len(best)):
            best = list(run)
    return [best[0], best[-1]] if best else None


def uniform_analyse(density: list[float], W: torch.Tensor) -> dict:
    """D* and D_i per level. W: [levels, m, n]."""
    dstar = measures.dims_per_feature(W).tolist()
    inv = [1 / d for d in density]
    D = measures.feature_dimensionality(W)
    return {"density": list(density), "inv_density": inv, "dstar": dstar,
            "sum_D": D.sum(1).tolist(),  # = m when every hidden dimension is used
            "D": D.tolist(), "half_plateau": half_plateau(inv, dstar),
            "half_levels": [x for x, d in zip(inv, dstar) if abs(d - 0.5) < HALF_TOL]}


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

def run_to_dir(kind: str, spec: SweepSpec, out: str | Path, backend: str = "local", workers: int | None = None,
               ray_address: str | None = None, progress: bool = False) -> Path:
    """kind "n2m1" or "uniform": run (or finish) the sweep, then write OUT/diagram (config.json, result.json,
    diagram.safetensors, KIND.png). Returns OUT/diagram."""
    from monosemantic.runs import read_run, write_run

    out = Path(out)
    meta = run_sweep(spec, out / "sweep", backend, workers, ray_address, progress)
    W = torch.cat([read_run(point_dir(out / "sweep", i))[2]["W"] for i in range(meta["points"])])
    if kind == "n2m1":
        res = n2m1_analyse(*axes(spec).values(), W)
        tensors = {"labels": torch.tensor(res["labels"]), "analytic": torch.tensor(res["analytic"]),
                   "norms": torch.tensor(res["norms"])}
    else:
        res = uniform_analyse(list(spec.grid["density"]), W)
        tensors = {"dstar": torch.tensor(res["dstar"]), "D": torch.tensor(res["D"])}
    res["transitions"] = meta["transitions"]
    res["wall_s"] = meta["wall_s"]
    from monosemantic.report import phase_plots

    fig = phase_plots.n2m1(res) if kind == "n2m1" else phase_plots.uniform(res)
    diagram = write_run(out / "diagram", {"kind": f"phase-{kind}", "sweep": str(out / "sweep"),
                                          "spec": spec.model_dump(mode="json")}, res, {"diagram": tensors},
                        overwrite=True)
    tmp = diagram / f".{kind}.png.tmp"
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    os.replace(tmp, diagram / f"{kind}.png")
    phase_plots.plt.close(fig)
    return diagram


# ---- sharp transitions along sweep axes ----

def records_of(points: list[dict], results: list[dict]) -> list[dict]:
    """The per-point records `transitions` reads, from in-memory results (sweeps.collect reads them from disk)."""
    return [record(pt["params"], res["result"]) for pt, res in zip(points, results)]


def transitions(records: list[dict], axes: list[str], d_jump: float = D_JUMP) -> list[dict]:
    """Where, between neighbouring points along each axis (other parameters fixed), a feature switches on
    or off (its norm crosses 0.5), its dimensionality D_i jumps by more than `d_jump` while represented,
    or the geometry label changes. records: [{"params", "norms", "D", "geometry"}]."""
    found = []
    for axis in axes:
        lines: dict[tuple, list[dict]] = {}
        for rec in records:
            if axis not in rec["params"]:
                continue
            rest = tuple(sorted((k, v) for k, v in rec["params"].items() if k != axis))
            lines.setdefault(rest, []).append(rec)
        for rest, line in lines.items():
            line = sorted(line, key=lambda q: q["params"][axis])
            for a, b in zip(line, line[1:]):
                where = {"axis": axis, "from": a["params"][axis], "to": b["params"][axis], "at": dict(rest)}
                for i, (na, nb) in enumerate(zip(a["norms"], b["norms"])):
                    ra, rb = na > measures.REPRESENTED, nb > measures.REPRESENTED
                    if ra != rb:
                        found.append({**where, "feature": i, "kind": "switches on" if rb else "switches off",
                                      "norm": [na, nb]})
                    elif ra and abs(a["D"][i] - b["D"][i]) > d_jump:
                        found.append({**where, "feature": i, "kind": "dimensionality jumps",
                                      "D": [a["D"][i], b["D"][i]]})
                if a["geometry"] != b["geometry"]:
                    found.append({**where, "feature": None, "kind": "geometry changes",
                                  "geometry": [a["geometry"], b["geometry"]]})
    return found
