"""Phase-diagram figures: the n=2, m=1 diagram against its analytic boundary, and D* / D_i for uniform importance."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import ListedColormap

from monosemantic.measures import FRACTIONS, LEVEL_NAMES, POLYTOPES

POLYTOPE_COLORS = dict(zip(list(POLYTOPES.values()) + ["other"],
                           ["#4c72b0", "#55a868", "#dd8452", "#8172b2", "#c44e52", "#937860", "#222222"]))
from monosemantic.toy.theory import BOTH, LABELS, NEITHER, ONLY_1, ONLY_2, SHARED, boundary_curves
from monosemantic.report.html import plt  # pyplot on the Agg backend


def n2m1(res: dict):
    """The trained diagram (colours) with the analytic boundary (black), departures (red crosses) and the
    transitions found along density (white dots); every marker has a black edge, to show on any colour."""
    r, s = np.asarray(res["r"]), np.asarray(res["density"])
    labels = np.asarray(res["labels"])
    fig, ax = plt.subplots(figsize=(6.4, 5))
    cmap = ListedColormap(["#bbbbbb", "#4c72b0", "#dd8452", "#55a868", "#8172b2"])  # neither, f1, f2, both, shared

    def edges(v):
        lv = np.log(v)
        mid = (lv[1:] + lv[:-1]) / 2
        return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))

    ax.pcolormesh(edges(r), edges(s), labels.T, cmap=cmap, vmin=-1.5, vmax=3.5, shading="flat")
    for rr, ss in boundary_curves(r.min(), r.max()):
        ax.plot(rr, ss, color="black", lw=2)
    dep = res["departures"]
    if dep:
        ax.scatter([d["r"] for d in dep], [d["density"] for d in dep], marker="X", color="red", edgecolors="black",
                   linewidths=0.8, s=50, zorder=3, label="trained != analytic")
    tr = [t for t in res.get("transitions", [])
          if t["axis"] == "density" and t["kind"] in ("switches on", "switches off")]
    if tr:
        ax.scatter([t["at"]["importance_ratio"] for t in tr], [math.sqrt(t["from"] * t["to"]) for t in tr],
                   marker="o", color="white", edgecolors="black", linewidths=0.8, s=28, zorder=3,
                   label="a feature switches (along density)")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("relative importance r of feature 2"), ax.set_ylabel("feature density 1 - S")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(5)]
    ax.legend(handles + ax.get_legend_handles_labels()[0],
              [LABELS[k] for k in (NEITHER, ONLY_1, ONLY_2, BOTH, SHARED)] + ax.get_legend_handles_labels()[1],
              fontsize=7, loc="lower left", framealpha=0.8)
    agree = res["agreement_far"]
    ax.set_title(f"n=2, m=1: trained (colours) vs analytic boundary (black); agreement away from it "
                 f"{agree:.0%}" if agree is not None else "n=2, m=1", fontsize=9)
    return fig


def uniform(res: dict):
    """D* against 1/(1-S) (left, with 1 and 1/2 marked) and every D_i against 1/(1-S) (right, the paper's
    fractions marked); levels with transitions get a dotted line with their count."""
    x = np.asarray(res["inv_density"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.plot(x, res["dstar"], "o-", color="#4c72b0")
    for y in (1, 0.5):
        a.axhline(y, color="#999", ls="--", lw=0.8)
    if res["half_plateau"]:
        a.axvspan(res["half_plateau"][0], res["half_plateau"][1], color="#55a868", alpha=0.2,
                  label=f"1/2 plateau (flatter than 1/4 of both flanks, mean within {res['half_tol']} of 1/2)")
        a.legend(fontsize=8)
    a.set_xscale("log"), a.set_xlabel("1/(1-S)"), a.set_ylabel("dimensions per feature D*")
    D = np.asarray(res["D"])  # [levels, n]
    for i, xi in enumerate(x):
        poly = res["geometry"][i]["feature_polytope"] if "geometry" in res else [None] * D.shape[1]
        colors = [POLYTOPE_COLORS.get(p, "#bbbbbb") for p in poly]
        b.scatter(np.full(D.shape[1], xi) * np.exp(np.random.default_rng(i).normal(0, 0.02, D.shape[1])), D[i],
                  s=4, alpha=0.5, c=colors)
    for f in FRACTIONS:
        b.axhline(f, color="#999", ls="--", lw=0.7)
        b.text(x.max() * 1.05, f, LEVEL_NAMES[f], fontsize=7, va="center")
    b.legend(handles=[plt.Line2D([], [], ls="", marker="o", ms=4, color=c, label=p)
                      for p, c in POLYTOPE_COLORS.items()] + [plt.Line2D([], [], ls="", marker="o", ms=4,
                                                                        color="#bbbbbb", label="not represented")],
             fontsize=6, loc="lower left", title="feature's tegum factor", title_fontsize=6)
    counts: dict[float, int] = {}  # transitions per neighbouring pair of levels, at their geometric midpoint
    for t in res.get("transitions", []):
        if t["feature"] is not None:
            mid = 1 / math.sqrt(t["from"] * t["to"])
            counts[mid] = counts.get(mid, 0) + 1
    for xm, c in counts.items():
        b.text(xm, 1.08, str(c), fontsize=6, ha="center", color="#dd8452")
        if c >= max(2, D.shape[1] // 4):  # a quarter of the features or more switch or jump here
            b.axvline(xm, color="#dd8452", ls=":", lw=0.8)
    b.set_xscale("log"), b.set_xlabel("1/(1-S)"), b.set_ylabel("feature dimensionality D_i"), b.set_ylim(-0.05, 1.15)
    b.set_title("top: features that switch or jump in D_i between neighbouring levels (dotted: a quarter or more)",
                fontsize=8)
    return fig


def geometry_levels(res: dict):
    """Per level of a uniform-importance run: the fraction of represented features on a named energy level
    (left) and how many features sit in each kind of tegum factor (right)."""
    x = np.asarray(res["inv_density"])
    geo = res["geometry"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4))
    a.plot(x, [np.nan if g["on_named_level"] is None else g["on_named_level"] for g in geo], "o-", color="#4c72b0")
    a.set_xscale("log"), a.set_ylim(-0.05, 1.05), a.set_xlabel("1/(1-S)")
    a.set_ylabel("represented features on a named level")
    a.set_title("D_i within 0.01 of 1, 3/4, 2/3, 1/2, 2/5, 3/8", fontsize=9)
    for name, color in POLYTOPE_COLORS.items():
        counts = [sum(p == name for p in g["feature_polytope"]) for g in geo]
        if any(counts):
            b.plot(x, counts, "o-", ms=3, color=color, label=name)
    b.set_xscale("log"), b.set_xlabel("1/(1-S)"), b.set_ylabel("features in such a factor")
    b.legend(fontsize=7), b.set_title(f"tegum factors (|W_hat_i . W_j| > {res['epsilon']}) by polytope", fontsize=9)
    fig.tight_layout()
    return fig
