"""Computation in superposition (Elhage et al. 2022): the absolute-value model h = ReLU(W1 x), y = ReLU(W2 h + b), target
|x| for x_i in [-1, 1], in the paper's setting (n=100, m=40, I_i = 0.8^i) across sparsity.

Per sparsity, on a held-out batch:
- feature i is *computed* when its output error E(y_i - |x_i|)^2 is below COMPUTED times the best constant's
  (the variance of |x_i|): a model that ignores the feature does no better than that constant;
- live neuron j *serves* feature i when its path weight relu(W2[i, j]) |W1[j, i]| exceeds SERVES times feature i's
  largest (|x| = ReLU(x) + ReLU(-x): two neurons per feature without superposition, one per sign);
- a computing neuron is monosemantic when it serves exactly one computed feature;
- the *asymmetric superposition* motif: a neuron serving two computed features with input weights of very different
  sizes (the larger at least ASYMMETRY times the smaller), so that one feature drives it fully and the other weakly.
"""
from __future__ import annotations

from pathlib import Path

import torch

import monosemantic.measures as measures
from monosemantic.experiments.privileged import trained
from monosemantic.runs import write_run

ABS_SPARSITY = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995]
COMPUTED = 0.5
SERVES = 0.1
ASYMMETRY = 2.0


def computed_features(y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(error, best constant's error) per feature, each [instances, n], for outputs y and inputs x: [instances,
    batch, n]; the target is |x|."""
    t = x.abs()
    return ((y - t) ** 2).mean(dim=1), t.var(dim=1, unbiased=False)


def serving(W1: torch.Tensor, W2: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """Bool [instances, n, m]: live neuron j serves feature i (path relu(W2[i, j]) |W1[j, i]| above SERVES times
    the feature's largest). W1: [instances, m, n], W2: [instances, n, m], used: [instances, m]."""
    path = W2.clamp_min(0) * W1.abs().transpose(1, 2) * used[:, None, :]  # [instances, n, m]
    return (path > SERVES * path.amax(dim=2, keepdim=True)) & (path > 0)


def analyse(W1: torch.Tensor, W2: torch.Tensor, used: torch.Tensor, err: torch.Tensor, base: torch.Tensor) -> list[dict]:
    """Per instance: the computed features, the neurons serving each, mono/polysemantic computing neurons and the
    asymmetric-superposition motifs."""
    computed = err < COMPUTED * base
    serves = serving(W1, W2, used) & computed[:, :, None]
    out = []
    for k in range(W1.shape[0]):
        feats = computed[k].nonzero().flatten().tolist()
        per_neuron = {j: serves[k, :, j].nonzero().flatten().tolist() for j in range(W1.shape[1])}
        computing = {j: f for j, f in per_neuron.items() if f}
        motifs = []
        for j, f in computing.items():
            if len(f) < 2:
                continue
            w = W1[k, j, f].abs()
            order = w.argsort(descending=True)
            big, small = f[int(order[0])], f[int(order[-1])]
            ratio = float(w.max() / w.min().clamp_min(1e-12))
            if ratio >= ASYMMETRY:
                motifs.append({"neuron": j, "features": f, "strong": big, "weak": small, "weight_ratio": ratio})
        out.append({"computed": feats, "features_computed": len(feats),
                    "neurons_per_feature": {str(i): int(serves[k, i].sum()) for i in feats},
                    "live_neurons": int(used[k].sum()), "computing_neurons": len(computing),
                    "monosemantic_computing": sum(len(f) == 1 for f in computing.values()),
                    "polysemantic_computing": sum(len(f) > 1 for f in computing.values()),
                    "serves": {str(j): f for j, f in computing.items()},
                    "asymmetric_superposition": motifs,
                    "relative_error": (err[k] / base[k].clamp_min(1e-12)).tolist()})
    return out


def computation(n: int = 100, m: int = 40, decay: float = 0.8, sparsity: list[float] | None = None,
                steps: int = 10_000, seeds: int = 3, seed: int = 0, out: str | Path | None = None,
                progress: bool = False, keep: dict | None = None) -> dict:
    """The abs model per sparsity: which features' |x| it computes, by how many neurons, and where the asymmetric
    motif appears. With `out`, write a run directory (model.safetensors: W, W2, b);
    `keep` receives what `trained` returned (the kept model and its held-out batch)."""
    sparsity = list(ABS_SPARSITY if sparsity is None else sparsity)
    t = trained("abs", n, m, sparsity, decay, steps, seeds, seed, progress)
    model, x = t["model"], t["x"]
    with torch.no_grad():
        used = measures.used_neurons(model.hidden(x))
        err, base = computed_features(model.forward(x), x)
    W1, W2 = t["tensors"]["W"], t["tensors"]["W2"]
    rows = analyse(W1, W2, used, err, base)
    res = {"n": n, "m": m, "importance_decay": decay, "steps": steps, "seeds": seeds, "sparsity": sparsity,
           "loss": t["loss"], "per_sparsity": rows,
           "features_computed": [r["features_computed"] for r in rows],
           "mean_neurons_per_feature": [sum(r["neurons_per_feature"].values()) / max(1, r["features_computed"])
                                        for r in rows],
           "asymmetric_motifs": [len(r["asymmetric_superposition"]) for r in rows], "wall_s": t["wall_s"]}
    if out is not None:
        res["run_dir"] = str(out)
        write_run(out, {"kind": "abs-computation", "model": "abs", "n": n, "m": m, "importance_decay": decay,
                        "sparsity": sparsity, "steps": steps, "seeds": seeds, "seed": seed},
                  res, {"model": t["tensors"]})
    if keep is not None:
        keep.update(t)
    return res
