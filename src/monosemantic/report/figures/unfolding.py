"""Figures for unfolding toy models: where cosine similarity misleads, and the larger model without superposition.

Toy ReLU-output models (n = 40 features, m = 10 dims, uniform importance) trained at several sparsities; their
activations h = W x are unfolded onto W's represented columns. The unfolded codes are the larger model without
superposition (its error against the true x and the toy model's output is measured across sparsity), and for
pairs of samples the cosine similarity of the raw activations is compared with the Jaccard overlap of the
supports: the more superposition, the less the first says about the second.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


SCATTERED = ("0.7", "0.9", "0.97", "0.99")  # sparsities drawn in the scatter (all eight would hide each other)


def plot(res: dict):
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.8))
    jitter = np.random.default_rng(0)
    for s in SCATTERED:
        r = res[s]
        a.scatter(r["cos"], r["jac"] + jitter.uniform(-0.02, 0.02, len(r["jac"])), s=3, alpha=0.3, label=f"S={s}")
    a.set_xlabel("cosine similarity of activations h")
    a.set_ylabel("Jaccard overlap of unfolded supports (jittered)")
    a.legend(markerscale=4)
    dens = [1 - float(s) for s in res]
    b.plot(dens, [r["correlation"] for r in res.values()], "o-", label="unfolded supports")
    b.plot(dens, [r["correlation_true_supports"] for r in res.values()], "s--", label="true supports")
    b.set_xscale("log")
    b.set_xlabel("feature density 1-S")
    b.set_ylabel("Pearson r(cosine, overlap)")
    b.legend()
    for key, style, label in (("toy_err", "k-", "toy model ReLU(W^T W x + b)"), ("omp_err", "o-", "unfolded, OMP"),
                              ("l1_err", "s-", "unfolded, non-negative lasso")):
        c.plot(dens, [max(r[key], 1e-12) for r in res.values()], style, label=label)
    c.set_xscale("log")
    c.set_yscale("log")
    top = 10.0  # where nothing can be unfolded (S = 0.5) the codes are wild: mark those points at the top edge
    for s, r in res.items():
        off = [f"{key[:-4]} {r[key]:.0e}" for key in ("omp_err", "l1_err") if r[key] > top]
        if off:
            c.annotate("\n".join(off) + " ↑", (1 - float(s), top), fontsize=7, ha="right", va="top")
    c.set_ylim(top=top)
    c.set_xlabel("feature density 1-S")
    c.set_ylabel("sum ||x_hat - x||^2 / sum ||x||^2")
    c.set_title("the larger model without superposition")
    c.legend(fontsize=8)
    fig.tight_layout()
    return fig


