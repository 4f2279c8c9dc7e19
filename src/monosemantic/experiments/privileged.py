"""Superposition in a privileged basis (Elhage et al. 2022): the ReLU-hidden model h = ReLU(W x), x' = ReLU(W^T h + b)
across sparsity, in the paper's setting (n=10, m=5, I_i = 0.75^i, best of 20 starts).

A ReLU on h makes the neuron basis special, so a neuron can be read feature by feature. Per sparsity: the neurons
that fire on held-out data (live), each live neuron's top-feature share of squared weight (monosemantic above
`measures.MONOSEMANTIC`), and the features that own a dedicated (monosemantic) neuron. The paper: dense features get
monosemantic neurons; with sparsity neurons turn polysemantic; the most important features keep theirs longest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import monosemantic.measures as measures
from monosemantic.errors import InputError
from monosemantic.runs import write_run
from monosemantic.toy.models import make_model
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.toy.train import kept_tensors, train_toy

PRIVILEGED_SPARSITY = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99]
EVAL_BATCH = 8192


def trained(kind: str, n: int, m: int, sparsity: list[float], decay: float, steps: int, seeds: int, seed: int = 0,
            progress: bool = False, eval_batch: int = EVAL_BATCH) -> dict:
    """Train `kind` per sparsity (best of `seeds`) and return the kept weights, a model holding only them, a held-out
    batch x: [sparsities, eval_batch, n] (its own seed), the probabilities, the importances [n] and the losses."""
    if n < 1 or m < 1:
        raise InputError(f"n and m must be positive, got n={n}, m={m}")
    p = probabilities(sparsity, n)
    weight = importance(n, decay)
    run = train_toy(kind, n, m, p, weight, steps, seeds=seeds, seed=seed, progress=progress)
    tensors = kept_tensors(run)
    model = make_model(kind, len(sparsity), n, m, [0] * len(sparsity))
    model.load(tensors)
    x = FeatureSampler(p, seed=seed + 20_000_003, signed=kind == "abs").sample_into(
        torch.empty(len(sparsity), eval_batch, n))
    return {"tensors": tensors, "model": model, "x": x, "p": p, "weight": weight, "loss": run.loss,
            "wall_s": run.log.wall_s}


def neuron_report(W: torch.Tensor, used: torch.Tensor) -> list[dict]:
    """Per instance of W: [instances, m, n] with live neurons used: [instances, m]: monosemantic and polysemantic live
    neurons, each live neuron's top feature and share, and the features owning a dedicated neuron."""
    share = measures.neuron_top_share(W)
    top = (W**2).argmax(dim=2)
    out = []
    for k in range(W.shape[0]):
        live = used[k].nonzero().flatten().tolist()
        mono = [j for j in live if share[k, j] > measures.MONOSEMANTIC]
        out.append({"live_neurons": len(live), "monosemantic": len(mono), "polysemantic": len(live) - len(mono),
                    "top_feature": [int(top[k, j]) if j in live else None for j in range(W.shape[1])],
                    "top_share": [float(share[k, j]) if j in live else None for j in range(W.shape[1])],
                    "dedicated_features": sorted({int(top[k, j]) for j in mono})})
    return out


def dedicated_until(sparsity: list[float], rows: list[dict], n: int) -> list[float | None]:
    """Per feature: the highest sparsity at which it still owns a dedicated neuron (None: never)."""
    last: list[float | None] = [None] * n
    for s, row in zip(sparsity, rows):
        for i in row["dedicated_features"]:
            last[i] = s if last[i] is None else max(last[i], s)
    return last


def rank_correlation(a, b) -> float | None:
    """Spearman's rank correlation of two equal-length sequences (None with fewer than 3 pairs or no spread)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3:
        return None
    ra, rb = a.argsort().argsort().astype(float), b.argsort().argsort().astype(float)  # ties broken by order
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def privileged(n: int = 10, m: int = 5, decay: float = 0.75, sparsity: list[float] | None = None, steps: int = 10_000,
               seeds: int = 20, seed: int = 0, out: str | Path | None = None, progress: bool = False,
               keep: dict | None = None) -> dict:
    """The ReLU-hidden model per sparsity: neuron counts, the neuron-by-feature weights (for the stacked bars) and
    when each feature loses its dedicated neuron. With `out`, write a run directory (model.safetensors); `keep`
    receives what `trained` returned (the kept model and its held-out batch)."""
    sparsity = list(PRIVILEGED_SPARSITY if sparsity is None else sparsity)
    t = trained("relu-hidden", n, m, sparsity, decay, steps, seeds, seed, progress)
    with torch.no_grad():
        used = measures.used_neurons(t["model"].hidden(t["x"]))
    W = measures.used_weights(t["tensors"]["W"], used)  # dead neurons' leftover weights read no feature
    rows = neuron_report(W, used)
    last = dedicated_until(sparsity, rows, n)
    owned = [(i, s) for i, s in enumerate(last) if s is not None]
    res = {"n": n, "m": m, "importance_decay": decay, "steps": steps, "seeds": seeds, "sparsity": sparsity,
           "loss": t["loss"], "W": W.tolist(), "neurons": rows,
           "monosemantic": [r["monosemantic"] for r in rows], "polysemantic": [r["polysemantic"] for r in rows],
           "live_neurons": [r["live_neurons"] for r in rows],
           "represented": measures.represented(W).sum(1).tolist(), "dedicated_until": last,
           # negative: the more important (lower index) a feature, the longer it keeps its own neuron
           "dedicated_rank_correlation": rank_correlation([i for i, _ in owned], [s for _, s in owned]),
           "wall_s": t["wall_s"]}
    if out is not None:
        res["run_dir"] = str(out)
        write_run(out, {"kind": "privileged-basis", "model": "relu-hidden", "n": n, "m": m, "importance_decay": decay,
                        "sparsity": sparsity, "steps": steps, "seeds": seeds, "seed": seed},
                  res, {"model": {"W": t["tensors"]["W"], "b": t["tensors"]["b"]}})
    if keep is not None:
        keep.update(t)
    return res
