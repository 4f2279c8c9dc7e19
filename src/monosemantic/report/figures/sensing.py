"""Report section of issue 7: unfolding speed and accuracy, and where cosine similarity misleads.

Toy ReLU-output models (n = 40 features, m = 10 dims, uniform importance) trained at several sparsities; their
activations h = W x are unfolded onto W's represented columns. The unfolded codes are the larger model without
superposition (its error against the true x and the toy model's output is measured across sparsity), and for
pairs of samples the cosine similarity of the raw activations is compared with the Jaccard overlap of the
supports: the more superposition, the less the first says about the second.
"""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import monosemantic.recovery as R
from monosemantic.report import Section, figure, table

SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995)
N, M = 40, 10
SAMPLES = 4000
PAIR_SAMPLES = 1500  # every pair among these many samples (~1.1M pairs) is scored
PLOTTED = 3000  # random pairs drawn in the scatter


def toy_unfolding(quick: bool, progress: bool) -> dict:
    """Per sparsity: the unfolded model's errors, and cosine against overlap over pairs of samples.

    One ReLU-output toy model per sparsity (trained together). Its activations h = W x are unfolded onto W's
    represented columns (unit norm) by OMP (relative tol 0.05, at most m atoms: the unrepresented features leave
    a small residual) and by the non-negative lasso (alpha 1e-3); the unfolded model's output is x_hat_i =
    code_i / ||W_i|| for represented i and 0 for the others. Errors are sum ||x_hat - x||^2 / sum ||x||^2 over
    the samples, against the true x and against the toy model's own output ReLU(W^T W x + b).
    """
    from monosemantic.toy.sampler import FeatureSampler, probabilities
    from monosemantic.measures import REPRESENTED
    from monosemantic.sensing import unfold_info
    from monosemantic.toy.train import train_toy

    run = train_toy("relu-output", N, M, probabilities(list(SPARSITIES), N), torch.ones(N),
                    steps=600 if quick else 4000, seeds=1, progress=progress, eval_batch=2048)
    W_all, b_all = run.model.W.detach()[run.kept], run.model.b.detach()[run.kept]  # [configs, m, n], [configs, n]
    rng = np.random.default_rng(0)
    out = {}
    for c, s in enumerate(SPARSITIES):
        W, b = W_all[c].double(), b_all[c].double()  # [m, n], [n]
        norms = W.norm(dim=0)
        keep = (norms > REPRESENTED).nonzero()[:, 0]
        x = FeatureSampler(probabilities(s, N), seed=1).sample(SAMPLES)[:, 0, :].double()  # [b, n]
        x = x[(x[:, keep] != 0).any(1)]  # samples with at least one represented feature on
        h = (x @ W.T).numpy()  # [b, m]
        toy_out = torch.relu(x @ W.T @ W + b).numpy()  # [b, n]
        F = (W[:, keep] / norms[keep]).T.numpy()  # [represented, m]
        x_np, scale = x.numpy(), norms[keep].numpy()
        r = dict(represented=int(len(keep)), samples=int(len(x)),
                 mean_active=float((x_np[:, keep.numpy()] != 0).sum(1).mean()),
                 toy_err=_rel_err(toy_out, x_np))
        for method, kw in (("omp", dict(tol=0.05, k=M)), ("l1", dict(alpha=1e-3, positive=True))):
            u = unfold_info(h, F, method, **kw)
            x_hat = np.zeros_like(x_np)
            x_hat[:, keep.numpy()] = u.codes.toarray() / scale  # codes on unit columns -> feature values
            r[f"{method}_err"] = _rel_err(x_hat, x_np)
            r[f"{method}_vs_toy"] = _rel_err(x_hat, toy_out, x_np)
            r[f"{method}_exact_support"] = float(((x_hat != 0) == (x_np != 0))[:, keep.numpy()].all(1).mean())
            r[f"{method}_unconverged"] = int(len(u.unconverged))
            if method == "omp":
                on = u.codes.toarray() != 0  # [b, represented] unfolded supports
                r["unfold_support_f1"] = R.code_scores(x_np[:, keep.numpy()] * scale, u.codes)["support_f1"]
        r.update(_pairs(h, on, x_np[:, keep.numpy()] != 0, keep.numpy(), rng))
        out[str(s)] = r
    return out


def _rel_err(a: np.ndarray, b: np.ndarray, norm_of: np.ndarray | None = None) -> float:
    """sum ||a - b||^2 / sum ||norm_of||^2 (norm_of defaults to b)."""
    return float(((a - b) ** 2).sum() / (((b if norm_of is None else norm_of) ** 2).sum()))


def _pairs(h: np.ndarray, on: np.ndarray, t_on: np.ndarray, names: np.ndarray, rng) -> dict:
    """Cosine of h against the Jaccard overlap of supports over every pair of the first PAIR_SAMPLES samples (on:
    unfolded, t_on: true supports, both [b, represented]); the most striking pair of each kind by the true
    supports; and PLOTTED random pairs for the scatter."""
    B = min(len(h), PAIR_SAMPLES)
    a, b = np.triu_indices(B, k=1)  # every pair once: [pairs]
    hn = h[:B] / np.linalg.norm(h[:B], axis=1, keepdims=True)
    cos = (hn @ hn.T)[a, b]

    def jaccard(on):
        on = on[:B].astype(np.float64)
        inter = on @ on.T  # [B, B] shared features
        size = on.sum(1)
        inter = inter[a, b]
        return inter, inter / np.maximum(size[a] + size[b] - inter, 1)

    inter, jac = jaccard(on)
    t_inter, jac_true = jaccard(t_on)
    examples = []
    disjoint, shared = np.flatnonzero(t_inter == 0), np.flatnonzero(jac_true >= 0.5)
    for kind, pool, pick in (("high cosine, no shared feature", disjoint, np.argmax),
                             ("low cosine, mostly shared", shared, np.argmin)):
        if len(pool):
            i = pool[pick(cos[pool])]
            examples.append({"kind": kind, "cosine": float(cos[i]), "jaccard": float(jac_true[i]),
                             "features of a": names[t_on[a[i]]].tolist(), "features of b": names[t_on[b[i]]].tolist()})
    shown = rng.choice(len(cos), min(PLOTTED, len(cos)), replace=False)
    return dict(pairs=int(len(cos)), correlation=float(np.corrcoef(cos, jac)[0, 1]),
                correlation_true_supports=float(np.corrcoef(cos, jac_true)[0, 1]),
                high_cos_no_shared=int(((cos > 0.8) & (t_inter == 0)).sum()),
                low_cos_mostly_shared=int(((cos < 0.3) & (jac_true >= 0.5)).sum()),
                examples=examples, cos=cos[shown], jac=jac[shown])


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


def sensing_section(quick: bool, progress: bool) -> tuple[Section, dict]:
    res = toy_unfolding(quick, progress)
    speed = unfolding_speed(quick)
    sec = Section("Unfolding activations, and where cosine similarity misleads (issue 7)")
    sec.text("Unfolding with the true dictionary of the section-5 data (512 features in d = 128), this machine, "
             "one process: batched OMP (relative tol 1e-6) and exact non-negative lasso (alpha 0.01, active set). "
             "benchmarks/unfolding.py compares both with scikit-learn in one run.")
    sec.add(table([{"method": k, **{kk: vv for kk, vv in v.items()}} for k, v in speed.items()]))
    sec.text(f"Toy ReLU-output models, n={N}, m={M}, uniform importance, one per sparsity. Their activations h = W x "
             "are unfolded onto W's represented columns: OMP (relative tol 0.05, as the unrepresented features leave "
             "a residual) and the non-negative lasso (alpha 1e-3). Left and middle: for pairs of samples (all pairs "
             "among 1500; 3000 of them drawn), the cosine of h against the Jaccard overlap of the supports. "
             "Right: the unfolded model x_hat (code / "
             "column norm for represented features, 0 for the rest) against the true x, next to the toy model's "
             "own output.")
    sec.add(figure(plot(res)))
    sec.add("<h3>The larger model without superposition</h3>")
    cols = ["S", "represented", "mean_active", "toy_err", "omp_err", "l1_err", "omp_vs_toy", "l1_vs_toy",
            "omp_exact_support", "l1_exact_support", "omp_unconverged", "l1_unconverged"]
    sec.add(table([{"S": s, **{k: r[k] for k in cols[1:]}} for s, r in res.items()], cols))
    sec.text("mean_active: represented features on per sample (samples with none are left out). *_err: sum ||x_hat "
             "- x||^2 / sum ||x||^2, over all n features, so a feature the model does not represent counts as an "
             "error for both it and its unfolding; *_vs_toy: the same distance to the toy model's output, over sum "
             "||x||^2. *_exact_support: share of samples whose unfolded support on the represented features is "
             "exactly the true one. OMP's unconverged samples are those left above tol 0.05 after m atoms.", note=True)
    sec.add("<h3>Where cosine similarity misleads</h3>")
    cols = ["S", "represented", "pairs", "correlation", "correlation_true_supports", "high_cos_no_shared",
            "low_cos_mostly_shared", "unfold_support_f1"]
    sec.add(table([{"S": s, **{k: r[k] for k in cols[1:]}} for s, r in res.items()], cols))
    sec.text("correlation: Pearson r between cosine and the overlap of the unfolded (OMP) supports; "
             "correlation_true_supports: the same against the true supports. high_cos_no_shared: pairs with "
             "cosine > 0.8 that share no true active feature; low_cos_mostly_shared: cosine < 0.3 with a true "
             "Jaccard >= 0.5.", note=True)
    sec.add(table([{"S": s, **e} for s, r in res.items() for e in r["examples"]],
                  ["S", "kind", "cosine", "jaccard", "features of a", "features of b"]))
    sec.text("For each sparsity, the pair of sampled activations with the highest cosine among those that share no "
             "true active feature, and the one with the lowest cosine among those whose true supports overlap by "
             "Jaccard >= 0.5 (features by index; all are represented).", note=True)
    summary = {"cosine_vs_overlap": {s: r["correlation"] for s, r in res.items()},
               "unfolded_toy_model": {s: {k: r[k] for k in ("toy_err", "omp_err", "l1_err", "omp_vs_toy",
                                                            "l1_vs_toy")} for s, r in res.items()},
               "unfolding": {k: {"support_f1": v["support_f1"], "samples_per_s": v["samples_per_s"]}
                             for k, v in speed.items()}}
    return sec, summary
