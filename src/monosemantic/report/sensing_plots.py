"""Report section of issue 7: unfolding speed and accuracy, and where cosine similarity misleads.

Cosine vs overlap: toy ReLU-output models (n = 40 features, m = 10 dims, uniform importance) trained at several
sparsities; their activations h = W x are unfolded by OMP onto W's represented columns, and for random pairs of
samples the cosine similarity of the raw activations is compared with the Jaccard overlap of the unfolded
supports. The more superposition, the less the first says about the second.
"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from monosemantic import recovery as R
from monosemantic.report import Section, figure, table

SPARSITIES = (0.7, 0.9, 0.97, 0.99)
N, M = 40, 10


def cosine_vs_overlap(quick: bool, progress: bool) -> dict:
    from monosemantic.features import FeatureSampler, probabilities
    from monosemantic.measures import REPRESENTED
    from monosemantic.sensing import unfold_info
    from monosemantic.toy.train import train_toy

    run = train_toy("relu-output", N, M, probabilities(list(SPARSITIES), N), torch.ones(N),
                    steps=600 if quick else 4000, seeds=1, progress=progress, eval_batch=2048)
    W_all = run.model.W.detach()[run.kept]  # [configs, m, n]
    rng = np.random.default_rng(0)
    out = {}
    for c, s in enumerate(SPARSITIES):
        W = W_all[c].double()  # [m, n]
        norms = W.norm(dim=0)
        keep = (norms > REPRESENTED).nonzero()[:, 0]
        x = FeatureSampler(probabilities(s, N), seed=1).sample(4000)[:, 0, :].double()  # [b, n]
        x = x[(x[:, keep] != 0).any(1)]  # samples with at least one represented feature on
        h = (x @ W.T).numpy()  # [b, m]
        F = (W[:, keep] / norms[keep]).T.numpy()  # [represented, m]
        # the unrepresented features leave a residual: a loose relative tol, at most m atoms
        u = unfold_info(h, F, "omp", tol=0.05, k=M)
        true = (x[:, keep] * norms[keep]).numpy()
        f1 = R.code_scores(true, u.codes)["support_f1"]
        on = (u.codes.toarray() != 0)  # [b, represented]
        a, b = rng.integers(0, len(h), (2, 3000))
        a, b = a[a != b], b[a != b]
        hn = h / np.linalg.norm(h, axis=1, keepdims=True)
        cos = (hn[a] * hn[b]).sum(1)
        inter, union = (on[a] & on[b]).sum(1), (on[a] | on[b]).sum(1)
        jac = inter / np.maximum(union, 1)
        t_on = true != 0  # the true supports (represented features), for the same pairs
        jac_true = (t_on[a] & t_on[b]).sum(1) / np.maximum((t_on[a] | t_on[b]).sum(1), 1)
        out[str(s)] = dict(represented=int(len(keep)), pairs=int(len(a)), correlation=float(np.corrcoef(cos, jac)[0, 1]),
                           correlation_true_supports=float(np.corrcoef(cos, jac_true)[0, 1]),
                           high_cos_no_shared=int(((cos > 0.8) & (inter == 0)).sum()),
                           low_cos_mostly_shared=int(((cos < 0.3) & (jac >= 0.5)).sum()),
                           unfold_support_f1=f1, unconverged=int(len(u.unconverged)), cos=cos, jac=jac)
    return out


def unfolding_speed(quick: bool) -> dict:
    from monosemantic.data import split, synth_uniform
    from monosemantic.sensing import unfold_info

    _, ev = split(synth_uniform(samples=20_000 if quick else 40_000, seed=0), 2000 if quick else 10_000)
    out = {}
    for method, kw in (("omp", dict(tol=1e-6)), ("l1", dict(alpha=0.01, positive=True))):
        t = time.perf_counter()
        u = unfold_info(ev.X, ev.F, method, **kw)
        wall = time.perf_counter() - t
        out[method] = dict(support_f1=R.code_scores(ev.codes, u.codes)["support_f1"], samples_per_s=len(ev.X) / wall,
                           unconverged=int(len(u.unconverged)))
    return out


def plot(res: dict):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for s, r in res.items():
        a.scatter(r["cos"], r["jac"] + np.random.default_rng(0).uniform(-0.02, 0.02, len(r["jac"])), s=3, alpha=0.3,
                  label=f"S={s}")
    a.set_xlabel("cosine similarity of activations h")
    a.set_ylabel("Jaccard overlap of unfolded supports (jittered)")
    a.legend(markerscale=4)
    dens = [1 - float(s) for s in res]
    b.plot(dens, [r["correlation"] for r in res.values()], "o-")
    b.set_xscale("log")
    b.set_xlabel("feature density 1-S")
    b.set_ylabel("Pearson r(cosine, overlap)")
    fig.tight_layout()
    return fig


def sensing_section(quick: bool, progress: bool) -> tuple[Section, dict]:
    res = cosine_vs_overlap(quick, progress)
    speed = unfolding_speed(quick)
    sec = Section("Unfolding activations, and where cosine similarity misleads (issue 7)")
    sec.text("Unfolding with the true dictionary of the section-5 data (512 features in d = 128), this machine, "
             "one process: batched OMP (relative tol 1e-6) and exact non-negative lasso (alpha 0.01, active set). "
             "benchmarks/unfolding.py compares both with scikit-learn in one run.")
    sec.add(table([{"method": k, **{kk: vv for kk, vv in v.items()}} for k, v in speed.items()]))
    sec.text(f"Toy ReLU-output models, n={N}, m={M}, uniform importance. Activations h = W x unfolded by OMP "
             "onto W's represented columns (relative tol 0.05: unrepresented features leave a residual). For random "
             "pairs of samples: cosine of h against the Jaccard overlap of the unfolded supports.")
    sec.add(figure(plot(res)))
    sec.add(table([{"S": s, **{k: v for k, v in r.items() if k not in ("cos", "jac")}} for s, r in res.items()]))
    sec.text("correlation: Pearson r between cosine and the overlap of the unfolded supports; "
             "correlation_true_supports: the same against the true supports. unfold_support_f1: unfolded against "
             "true supports (compressed sensing from m = 10 dims needs sparse inputs). high_cos_no_shared: pairs with cosine > 0.8 that share no unfolded feature; low_cos_mostly_shared: "
             "cosine < 0.3 with Jaccard >= 0.5.", note=True)
    summary = {"cosine_vs_overlap": {s: r["correlation"] for s, r in res.items()},
               "unfolding": {k: {"support_f1": v["support_f1"], "samples_per_s": v["samples_per_s"]}
                             for k, v in speed.items()}}
    return sec, summary
