"""Non-uniform superposition (Elhage et al. 2022): n=5, m=2, equal importance, the other features at 1-S = 0.05.
One feature's density is varied (and, separately, its importance); the pentagon deforms and then switches.

Each point keeps the lowest-loss of `seeds` random starts. The switch points are where the layout label
(measures.geometry: pentagon, antipodal pairs, ...) or the set of represented features changes between
neighbouring values.
"""
from __future__ import annotations

import numpy as np
import torch

import monosemantic.measures as measures
from monosemantic.toy.train import kept_tensors, train_toy

N, M, OTHERS_DENSITY = 5, 2, 0.05


def _train(density: np.ndarray, importance: np.ndarray, steps: int, seeds: int, seed: int, progress: bool):
    """density, importance: [points, n] -> kept W: [points, m, n] and losses."""
    p = torch.tensor(density, dtype=torch.float32)
    run = train_toy("relu-output", N, M, p, torch.tensor(importance, dtype=torch.float32), steps, seeds=seeds,
                    seed=seed, progress=progress)
    return kept_tensors(run)["W"], run.loss


def _describe(values: list[float], W: torch.Tensor, loss: list[float]) -> dict:
    norms, D = measures.feature_norms(W), measures.feature_dimensionality(W)
    geo = [measures.geometry(w) for w in W]
    labels = [f"{g['label']} ({len(g['represented'])} represented)" for g in geo]
    switches = [{"between": [values[k], values[k + 1]], "from": labels[k], "to": labels[k + 1]}
                for k in range(len(values) - 1) if labels[k] != labels[k + 1]]
    # how far the others are pushed: the smallest angle between the varied feature and any other represented one
    cos = measures.cosines(W)
    rep = measures.represented(W)
    nearest = [float(torch.rad2deg(torch.arccos(cos[k, 0, 1:][rep[k, 1:]].clamp(-1, 1))).min())
               if rep[k, 0] and rep[k, 1:].any() else None for k in range(len(values))]
    return {"values": values, "labels": labels, "switches": switches, "loss": loss,
            "norm_0": norms[:, 0].tolist(), "D_0": D[:, 0].tolist(), "D": D.tolist(),
            "nearest_angle_deg": nearest, "W": W.tolist()}


def nonuniform(densities: list[float] | None = None, importances: list[float] | None = None, steps: int = 10_000,
               seeds: int = 10, seed: int = 0, progress: bool = False) -> dict:
    """Vary feature 0's density (others at 0.05, all importance 1), then its importance (all at density 0.05)."""
    densities = densities or np.geomspace(0.005, 1.0, 12).tolist()
    importances = importances or np.geomspace(0.1, 10.0, 12).tolist()
    d = np.full((len(densities), N), OTHERS_DENSITY)
    d[:, 0] = densities
    i = np.full((len(importances), N), 1.0)
    i[:, 0] = importances
    dens_all = np.concatenate([d, np.full_like(i, OTHERS_DENSITY)])
    imp_all = np.concatenate([np.ones_like(d), i])
    W, loss = _train(dens_all, imp_all, steps, seeds, seed, progress)
    k = len(densities)
    return {"n": N, "m": M, "others_density": OTHERS_DENSITY, "steps": steps, "seeds": seeds,
            "density": _describe(densities, W[:k], loss[:k]), "importance": _describe(importances, W[k:], loss[k:])}


def demo(quick: bool, progress: bool) -> dict:
    """8 densities and 8 importances, 2,000 steps, best of 5 (quick: 5 each, 300 steps, best of 2)."""
    count, steps, seeds = (5, 300, 2) if quick else (8, 2000, 5)
    return nonuniform(np.geomspace(0.005, 1.0, count).tolist(), np.geomspace(0.1, 10.0, count).tolist(), steps,
                      seeds, progress=progress)
