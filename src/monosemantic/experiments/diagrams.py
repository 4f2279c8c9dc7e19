"""Both of the paper's phase diagrams under the paper's protocol, beside the options this package adds.

- n=2, m=1 over feature 2's relative importance r and density (the closed-form boundary in toy/theory.py);
- n=3, m=2 over the third feature's relative importance r (features 1 and 2 have importance 1) and density:
  each point labelled by the layout reached, which features are represented and whether they superpose.

Protocols, all from one batched training per diagram:
- "paper": ten random (Xavier) starts per point, drop the one of highest loss, label by the majority of the
  other nine (a tie goes to the tied label whose best start has the lower loss);
- "best": the label of the lowest-loss random start (best of N);
- "candidates": start from each ideal layout (slightly perturbed) and keep the lowest loss.
Agreement between protocols is counted away from the boundaries: at points whose candidate label is the same
on every grid neighbour.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from monosemantic.data import check_seed
from monosemantic.errors import InputError
import monosemantic.measures as measures
from monosemantic.experiments.phase import far_from_boundary
from monosemantic.experiments.sweeps import CANDIDATE_NOISE, candidate_layouts
from monosemantic.runs import check_memory
from monosemantic.toy.theory import LABELS, analytic_labels, n2m1_labels
from monosemantic.toy.train import toy_bytes, train_toy

PAPER_STARTS = 10


def train_starts(n: int, m: int, p: torch.Tensor, weight: torch.Tensor, init: torch.Tensor, steps: int,
                 seed: int = 0, progress: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """Train every start of every point at once. p, weight: [points, n]; init: [points * starts, m, n].
    Returns (W: [points, starts, m, n], eval loss: [points, starts])."""
    P = p.shape[0]
    K = init.shape[0] // P
    run = train_toy("relu-output", n, m, p, weight, steps, seeds=K, seed=seed, init=init, progress=progress)
    return run.model.tensors()["W"].reshape(P, K, m, n), np.asarray(run.all_loss)


def check_fits(n: int, m: int, points: int, starts: int) -> None:
    """Refuse, before the starts are drawn, a diagram whose models (points x starts, trained at once) cannot fit."""
    check_memory(toy_bytes(n, m, points * starts, 1024, 16384),
                 f"the n={n}, m={m} diagram ({points} points x {starts} starts)", "lower the grid or --seeds")


def xavier(points: int, starts: int, m: int, n: int, seed: int) -> torch.Tensor:
    """Random starts: [points * starts, m, n], Xavier-normal."""
    g = torch.Generator().manual_seed(seed)
    return math.sqrt(2.0 / (m + n)) * torch.randn(points * starts, m, n, generator=g)


def from_candidates(layouts: torch.Tensor, points: int, seed: int) -> torch.Tensor:
    """Every point starts from each layout ([k, m, n]) plus CANDIDATE_NOISE: [points * k, m, n]."""
    g = torch.Generator().manual_seed(seed + 1)
    init = layouts.repeat(points, 1, 1)
    return init + CANDIDATE_NOISE * torch.randn(init.shape, generator=g)


def protocol_labels(labels: np.ndarray, loss: np.ndarray) -> dict[str, np.ndarray]:
    """labels, loss: [points, starts]. "paper": majority of all starts but the worst; "best": lowest loss."""
    best = labels[np.arange(len(labels)), loss.argmin(1)]
    paper = np.empty(len(labels), dtype=labels.dtype)
    for i, (lab, ls) in enumerate(zip(labels, loss)):
        keep = np.argsort(ls)[:-1] if len(ls) > 1 else np.arange(len(ls))
        counts = Counter(lab[keep].tolist())
        top = max(counts.values())
        tied = [k for k, c in counts.items() if c == top]
        paper[i] = min(tied, key=lambda k: ls[keep][lab[keep] == k].min())
    return {"paper": paper, "best": best}


def n3m2_layouts() -> torch.Tensor:
    """The ideal n=3, m=2 layouts: [7, 2, 3]: each pair of features orthogonal (3), each antipodal pair with the
    third feature orthogonal to it (3), and the triangle of all three."""
    out = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        W = torch.zeros(2, 3)
        W[0, i], W[1, j] = 1, 1
        out.append(W)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        W = torch.zeros(2, 3)
        W[0, i], W[0, j], W[1, 3 - i - j] = 1, -1, 1
        out.append(W)
    a = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    out.append(torch.stack([a.cos(), a.sin()]))
    return torch.stack(out)


def layout_label(W_k: torch.Tensor) -> str:
    """The layout one W_k: [2, 3] reached: its represented features (1-based) and how they share the plane:
    nothing added when orthogonal, "triangle", "antipodal A&B" for an antipodal pair (the third orthogonal to it
    or absent), else "superposed"; "none" when no feature is represented. Features 1 and 2 are interchangeable
    (both of importance 1), so where only one of them is involved it is "1/2"."""
    g = measures.geometry(W_k)
    rep = g["represented"]
    if not rep:
        return "none"

    def name(i, group):
        return "1/2" if i < 2 and not {0, 1} <= set(group) else str(i + 1)

    out = "+".join(name(i, rep) for i in rep)
    if g["orthogonal"]:
        return out
    if g["polygon"] == 3:
        return out + " triangle"
    if len(g["antipodal_pairs"]) == 1:
        a, b = g["antipodal_pairs"][0]
        return out + f" antipodal {name(a, [a, b])}&{name(b, [a, b])}"
    return out + " superposed"


def _codes(*arrays: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    names = sorted({str(v) for a in arrays for v in a.ravel()})
    return names, [np.vectorize(names.index)(a) for a in arrays]


def _grid(grid: int, r_range, density_range) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
    r = np.geomspace(*r_range, grid)
    s = np.geomspace(*density_range, grid)
    R, S = np.meshgrid(r, s, indexing="ij")  # r-major
    return r.tolist(), s.tolist(), R.ravel(), S.ravel()


def n2m1(grid: int = 10, steps: int = 10_000, starts: int = PAPER_STARTS, seed: int = 0,
         r_range=(0.1, 10.0), density_range=(1.0, 0.01), progress: bool = False) -> dict:
    """The n=2, m=1 diagram under the three protocols, each against the analytic labels away from the boundary."""
    r, s, R, S = _grid(grid, r_range, density_range)
    P = len(R)
    check_fits(2, 1, P, starts + len(candidate_layouts(2)))
    p = torch.tensor(np.stack([S, S], 1), dtype=torch.float32)
    weight = torch.tensor(np.stack([np.ones(P), R], 1), dtype=torch.float32)
    init = torch.cat([xavier(P, starts, 1, 2, seed).reshape(P, starts, 1, 2),
                      from_candidates(candidate_layouts(2), P, seed).reshape(P, -1, 1, 2)], 1).reshape(-1, 1, 2)
    W, loss = train_starts(2, 1, p, weight, init, steps, seed, progress)
    labels = n2m1_labels(W.reshape(-1, 1, 2)).reshape(P, -1)
    rand = protocol_labels(labels[:, :starts], loss[:, :starts])
    cand = labels[np.arange(P), starts + loss[:, starts:].argmin(1)]
    analytic = analytic_labels(R, S).reshape(grid, grid)
    far = far_from_boundary(analytic)
    maps = {"paper": rand["paper"], "best": rand["best"], "candidates": cand}
    agree = {k: float((v.reshape(grid, grid) == analytic)[far].mean()) if far.any() else None
             for k, v in maps.items()}
    return {"r": r, "density": s, "starts": starts, "steps": steps, "far_points": int(far.sum()),
            "labels": {k: [[LABELS[int(x)] for x in row] for row in v.reshape(grid, grid)] for k, v in maps.items()},
            "analytic": [[LABELS[int(x)] for x in row] for row in analytic],
            "agreement_with_analytic_far": agree,
            "protocol_agreement_far": float((rand["paper"] == cand).reshape(grid, grid)[far].mean())
            if far.any() else None}


def n3m2(grid: int = 8, steps: int = 10_000, starts: int = PAPER_STARTS, seed: int = 0,
         r_range=(0.1, 10.0), density_range=(1.0, 0.01), progress: bool = False) -> dict:
    """The n=3, m=2 diagram: features 1, 2 of importance 1, feature 3 of importance r; all of one density."""
    r, s, R, S = _grid(grid, r_range, density_range)
    P = len(R)
    p = torch.tensor(np.stack([S] * 3, 1), dtype=torch.float32)
    weight = torch.tensor(np.stack([np.ones(P), np.ones(P), R], 1), dtype=torch.float32)
    layouts = n3m2_layouts()
    check_fits(3, 2, P, starts + len(layouts))
    init = torch.cat([xavier(P, starts, 2, 3, seed).reshape(P, starts, 2, 3),
                      from_candidates(layouts, P, seed).reshape(P, -1, 2, 3)], 1).reshape(-1, 2, 3)
    W, loss = train_starts(3, 2, p, weight, init, steps, seed, progress)
    labels = np.array([layout_label(w) for w in W.reshape(-1, 2, 3)], dtype=object).reshape(P, -1)
    names, (codes,) = _codes(labels)
    rand = protocol_labels(codes[:, :starts], loss[:, :starts])
    cand = codes[np.arange(P), starts + loss[:, starts:].argmin(1)]
    far = far_from_boundary(cand.reshape(grid, grid))
    maps = {"paper": rand["paper"], "best": rand["best"], "candidates": cand}
    grids = {k: [[names[int(x)] for x in row] for row in v.reshape(grid, grid)] for k, v in maps.items()}
    return {"r": r, "density": s, "starts": starts, "steps": steps, "labels": grids,
            "label_counts": {k: dict(Counter(names[int(x)] for x in v)) for k, v in maps.items()},
            "far_points": int(far.sum()),
            "protocol_agreement_far": float((rand["paper"] == cand).reshape(grid, grid)[far].mean())
            if far.any() else None,
            "best_vs_candidates_far": float((rand["best"] == cand).reshape(grid, grid)[far].mean())
            if far.any() else None,
            "candidate_loss_below_random": float((loss[:, starts:].min(1) <= loss[:, :starts].min(1) + 1e-6).mean())}


def protocols_run(out, grid2: int = 20, grid3: int = 10, steps: int = 10_000, starts: int = PAPER_STARTS,
                  seed: int = 0, progress: bool = False, draw=None) -> dict:
    """Both diagrams at the paper's settings into a run directory OUT (result.json; with `draw` (result, title)
    -> figure, n2m1.png and n3m2.png). Returns the result."""
    from monosemantic.runs import check_new_dir, figure_file, write_run

    if grid2 < 2 or grid3 < 2 or starts < 2:
        raise InputError(f"need grids of at least 2 points and at least 2 starts, got {grid2}, {grid3}, {starts}")
    check_seed(seed)
    check_new_dir(out, False)
    res = {"n2m1": n2m1(grid2, steps, starts, seed, progress=progress),
           "n3m2": n3m2(grid3, steps, starts, seed, progress=progress)}
    files = {f"{k}.png": figure_file(draw(res[k], k)) for k in res} if draw else None
    write_run(out, {"kind": "phase-protocols", "grid2": grid2, "grid3": grid3, "steps": steps, "starts": starts,
                    "seed": seed}, res, {}, extra_files=files)
    return res


def demo(quick: bool, progress: bool) -> dict:
    """Both diagrams, sized for the demo (measured at 10 x 10 and 8 x 8, 2,000 steps, on a loaded machine: 111 s
    and 187 s); the paper's settings are `monosemantic phase protocols` (docs/toy_lab.md)."""
    grid2, grid3, steps, starts = (3, 2, 100, 3) if quick else (6, 5, 1000, PAPER_STARTS)
    return {"n2m1": n2m1(grid2, steps, starts, progress=progress), "n3m2": n3m2(grid3, steps, starts, progress=progress)}
