"""Figures of road 1: the L1 loss/polysemanticity front, the importance threshold, the effective size."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def _threshold_trend(lam: np.ndarray, thr: np.ndarray) -> str:
    """The title says what the plotted thresholds do, dips included (NaN: every feature dropped)."""
    ok = ~np.isnan(thr)
    dips = [float(l) for l, a, b in zip(lam[ok][1:], thr[ok][:-1], thr[ok][1:]) if b < a]
    if not dips:
        return "the threshold rises with lambda"
    return ("importance threshold against lambda: it dips at lambda = " + ", ".join(f"{v:.3g}" for v in dips))


def _num(v) -> float:
    return math.nan if v is None else float(v)


def l1_front(sweep: dict):
    """Loss against the mean top-feature share of used neurons, one point per lambda (the monosemanticity definition,
    and over positive weights only), and the importance threshold against lambda."""
    lam = np.array(sweep["lambda"])
    loss = np.array(sweep["loss"])
    # constrained from the start: the report's layout, which a colorbar made under another layout refuses
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for key, label, marker in (("mean_top_share", "all weights", "o"),
                               ("mean_excitatory_share", "positive weights only", "s")):
        share = np.array([_num(v) for v in sweep[key]])
        sc = a.scatter(share, loss, c=np.log10(np.maximum(lam, lam[lam > 0].min() / 3)), marker=marker,
                       cmap="viridis", label=label)
    a.plot(np.array([_num(v) for v in sweep["mean_top_share"]]), loss, color="#bbb", lw=0.8, zorder=0)
    # under the axes: the report puts legends on the right, where a colorbar would sit under them
    fig.colorbar(sc, ax=a, location="bottom", label="log10 lambda (lambda=0 at the left end)")
    a.set_xlabel("mean top-feature share of used neurons (1 = monosemantic)")
    a.set_ylabel("reconstruction loss")
    a.legend(fontsize=8), a.set_title("what monosemanticity costs", fontsize=10)
    thr = np.array([_num(v) for v in sweep["importance_threshold"]])
    pos = lam > 0
    b.plot(lam[pos], thr[pos], "o-", label="importance threshold")
    dead = pos & np.isnan(thr)
    if dead.any():
        b.scatter(lam[dead], np.full(dead.sum(), 1.0), marker="x", color="red", label="every feature dropped")
    b.set_xscale("log"), b.set_yscale("log")
    b.set_xlabel("lambda"), b.set_ylabel("importance of least important represented feature")
    c = b.twinx()
    c.step(lam[pos], np.array(sweep["represented_features"])[pos], where="mid", color="#d62728", alpha=0.6)
    c.set_ylabel("represented features", color="#d62728")
    b.legend(fontsize=8, loc="upper left"), b.set_title(_threshold_trend(lam[pos], thr[pos]), fontsize=10)
    return fig


def loss_per_activation(dropped: dict, importance: list[float]):
    """Each feature's loss reduction per activation, coloured by the lambda at which the penalty drops it."""
    value = np.array([_num(v) for v in dropped["loss_per_activation"]])
    at = np.array([_num(v) for v in dropped["dropped_at_lambda"]])
    fig, ax = plt.subplots(figsize=(8, 3))
    finite = at[np.isfinite(at)]
    lo, hi = (np.log10(finite.min()), np.log10(finite.max())) if len(finite) else (0, 1)
    colors = [plt.cm.plasma((np.log10(a) - lo) / max(hi - lo, 1e-9) * 0.9) if np.isfinite(a) else "#999"
              for a in at]
    ax.bar(np.arange(len(value)), np.nan_to_num(value), color=colors)
    ax.set_yscale("log")
    ax.set_xlabel("feature (importance decreasing)"), ax.set_ylabel("loss reduction per activation")
    ax.set_title("features given up, by the lambda that drops them (dark: first; grey: never represented)",
                 fontsize=9)
    return fig


def effective_k(res: dict):
    """k = m'/m against density, with the fitted compressed-sensing scaling 1/(p log 1/p) and the cap n/m."""
    d = np.array(res["density"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(d, res["k"], "o-", label="measured k = m'/m")
    cs = np.array([_num(v) for v in res["cs_scaling"]])
    ax.plot(d, cs, "--", label=f"compressed sensing: {_num(res['cs_scale']):.2g} / (p log 1/p)")
    ax.axhline(res["k_cap"], color="#999", lw=0.8, label="cap n/m")
    ax.set_xscale("log"), ax.set_yscale("log"), ax.invert_xaxis()
    ax.set_xlabel("feature density 1 - S"), ax.set_ylabel("k")
    ax.legend(fontsize=8)
    return fig
