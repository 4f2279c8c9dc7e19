"""Adversarial vulnerability and superposition (Elhage et al. 2022): the paper's analytic attack on the ReLU-output
model x' = ReLU(W^T W x + b) across sparsity.

Gradient attacks fail on these models (the ReLU masks the gradient), so the attack is analytic: for each feature i,
perturb every input along the unit vector d_i = (W^T W)_i / ||(W^T W)_i|| (the direction that moves output i
fastest) with norm lambda = ATTACK_NORM x the mean input norm, and keep the feature whose perturbation raises the
loss most. The model is an autoencoder, so the perturbed input is also the target: a model without superposition
(W^T W a projection onto kept features) reproduces the perturbation and loses nothing.

vulnerability = (worst attacked loss - clean loss) / clean loss, on a held-out batch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import monosemantic.measures as measures
from monosemantic.errors import InputError
from monosemantic.experiments.privileged import rank_correlation, trained
from monosemantic.runs import write_run
from monosemantic.toy.models import loss_per_instance

ATTACK_NORM = 0.1  # the paper's lambda, as a fraction of the mean input norm
ADVERSARIAL_SPARSITY = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995]


def check_norm(norm: float) -> None:
    if not norm > 0:
        raise InputError(f"the attack norm (a fraction of the mean input norm) must be > 0, got {norm}")


@torch.no_grad()
def analytic_attack(model, x: torch.Tensor, weight: torch.Tensor, norm: float = ATTACK_NORM) -> dict:
    """The worst single-feature analytic attack per instance of a tied model on x: [instances, batch, n]
    (weight: [instances, 1, n]): clean and attacked losses [instances], the worst feature and lambda."""
    check_norm(norm)
    W = model.W
    G = torch.bmm(W.transpose(1, 2), W)  # W^T W: [instances, n, n], row i = how output i reads the input
    rows = G.norm(dim=2)
    D = G / rows.clamp_min(1e-12)[:, :, None]
    lam = norm * x.norm(dim=2).mean(dim=1)  # [instances]
    clean = loss_per_instance(model, x, weight)
    attacked = torch.full((W.shape[0], W.shape[2]), -torch.inf, dtype=torch.float64)
    for i in range(W.shape[2]):
        xa = x + lam[:, None, None] * D[:, None, i, :]
        attacked[:, i] = torch.where(rows[:, i] > 1e-6, loss_per_instance(model, xa, weight), -torch.inf)
    worst, feature = attacked.max(dim=1)
    return {"clean_loss": clean, "attacked_loss": worst, "feature": feature, "lambda": lam}


def pearson(a, b) -> float | None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def adversarial(n: int = 20, m: int = 5, decay: float = 1.0, sparsity: list[float] | None = None, steps: int = 10_000,
                seeds: int = 3, seed: int = 0, norm: float = ATTACK_NORM, out: str | Path | None = None,
                progress: bool = False) -> dict:
    """Vulnerability per sparsity against features per dimension (1/D*) and their correlation (the paper: positive).
    With `out`, write a run directory (model.safetensors)."""
    check_norm(norm)
    sparsity = list(ADVERSARIAL_SPARSITY if sparsity is None else sparsity)
    t = trained("relu-output", n, m, sparsity, decay, steps, seeds, seed, progress)
    weight = t["weight"].reshape(1, 1, n).expand(len(sparsity), 1, n)
    att = analytic_attack(t["model"], t["x"], weight, norm)
    W = t["tensors"]["W"]
    clean, worst = att["clean_loss"], att["attacked_loss"]
    vuln = ((worst - clean) / clean.clamp_min(1e-12)).tolist()
    per_dim = (1 / measures.dims_per_feature(W)).tolist()
    res = {"n": n, "m": m, "importance_decay": decay, "steps": steps, "seeds": seeds, "sparsity": sparsity,
           "attack_norm": norm, "vulnerability": vuln, "features_per_dim": per_dim,
           "clean_loss": clean.tolist(), "attacked_loss": worst.tolist(), "loss_increase": (worst - clean).tolist(),
           "worst_feature": att["feature"].tolist(), "lambda": att["lambda"].tolist(),
           "correlation_with_features_per_dim": pearson(vuln, per_dim),
           "correlation_with_features_per_dim_spearman": rank_correlation(vuln, per_dim), "wall_s": t["wall_s"]}
    if out is not None:
        res["run_dir"] = str(out)
        write_run(out, {"kind": "adversarial", "model": "relu-output", "n": n, "m": m, "importance_decay": decay,
                        "sparsity": sparsity, "steps": steps, "seeds": seeds, "seed": seed, "attack_norm": norm},
                  res, {"model": t["tensors"]})
    return res

