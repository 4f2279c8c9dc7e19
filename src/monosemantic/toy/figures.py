"""The paper's toy-model figures, composed from the trainer and the measures.

Both train the ReLU-output model with best-of-N seeds (the paper's layouts are the lowest loss,
but not what every start reaches: ../shared/README.md section 3) and the linear model beside it.
"""
from __future__ import annotations

import torch

from monosemantic import measures
from monosemantic.features import importance, probabilities
from monosemantic.toy.train import kept_tensors, train_toy

N5M2_SPARSITY = [0.0, 0.8, 0.9]
N20M5_DENSITY = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]


def _both_models(n, m, sparsity, decay, steps, seeds, seed, progress, batch=1024):
    out = {}
    for kind, k in (("relu-output", seeds), ("linear", 1)):
        run = train_toy(kind, n, m, probabilities(sparsity, n), importance(n, decay), steps, batch, k, seed,
                        progress=progress)
        W = kept_tensors(run)["W"]
        out[kind] = {"W": W, "loss": run.loss, "wall_s": run.log.wall_s,
                     "represented": measures.represented(W).sum(1).tolist(),
                     "geometry": [measures.geometry(w)["label"] for w in W]}
    return out


def n5m2(steps: int = 10_000, seeds: int = 20, seed: int = 0, progress: bool = False) -> dict:
    """n=5, m=2, I_i = 0.9^i at S = 0, 0.8, 0.9: 2 orthogonal features, two antipodal pairs, a pentagon."""
    return {"sparsity": N5M2_SPARSITY, **_both_models(5, 2, N5M2_SPARSITY, 0.9, steps, seeds, seed, progress)}


def n20m5(steps: int = 10_000, seeds: int = 3, seed: int = 0, progress: bool = False) -> dict:
    """n=20, m=5, I_i = 0.7^i at 1-S = 1 ... 0.001: the linear model keeps 5 features, ReLU more as S grows."""
    sparsity = [1 - d for d in N20M5_DENSITY]
    return {"density": N20M5_DENSITY, **_both_models(20, 5, sparsity, 0.7, steps, seeds, seed, progress)}
