"""Figures of the privileged-basis, computation, adversarial and circuits results: the paper's neuron-by-feature
stacked bars, feature-basis maps as heat maps (features in importance order), and vulnerability against sparsity and
against features per dimension."""
from __future__ import annotations

import numpy as np

from monosemantic.report.html import plt  # pyplot on the Agg backend


def neuron_bars(res: dict):
    """Per sparsity, each live neuron's weights stacked by feature (positive up, negative down), coloured by feature."""
    W = np.asarray(res["W"])  # [sparsities, m, n], dead neurons zeroed
    S, m, n = W.shape
    colors = plt.cm.viridis(np.linspace(0, 0.95, n))
    fig, axes = plt.subplots(1, S, figsize=(2.1 * S + 1, 3.2), sharey=True, squeeze=False)
    for k, ax in enumerate(axes[0]):
        order = np.argsort([row if row is not None else n for row in res["neurons"][k]["top_feature"]], kind="stable")
        for pos, j in enumerate(order):
            up = down = 0.0
            for i in range(n):
                w = W[k, j, i]
                ax.bar(pos, w, bottom=up if w >= 0 else down, color=colors[i], width=0.8)
                up, down = (up + w, down) if w >= 0 else (up, down + w)
        ax.axhline(0, color="k", lw=0.5)
        r = res["neurons"][k]
        ax.set_title(f"S = {res['sparsity'][k]:g}\n{r['monosemantic']} mono / {r['polysemantic']} poly", fontsize=8)
        ax.set_xticks(range(m)), ax.set_xticklabels([str(j) for j in order], fontsize=7)
        ax.set_xlabel("neuron", fontsize=8)
    axes[0][0].set_ylabel("weight from each feature")
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, n - 1))
    fig.colorbar(sm, ax=axes[0].tolist(), label="feature (0 = most important)", fraction=0.02)
    return fig


def maps(circ: dict):
    """True and learned feature-basis maps (last instance of each model), features in importance order."""
    fig, axes = plt.subplots(len(circ), 2, figsize=(7.5, 3.6 * len(circ)), squeeze=False, constrained_layout=True)
    for row, (name, r) in zip(axes, circ.items()):
        M, L = np.asarray(r["M"]), np.asarray(r["learned_map_matched"])
        lim = max(np.abs(M).max(), np.abs(L).max(), 1e-6)
        s = r["learned"]
        for ax, A, title in ((row[0], M, f"{name}, S = {r['sparsity'][-1]:g}: true features"),
                             (row[1], L, f"learned (road 2): corr {s['map_correlation']:.3f}, "
                                         f"intended {s['intended_recovered']:.0%}")):
            im = ax.imshow(A, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(title, fontsize=8), ax.set_xlabel("input feature"), ax.set_ylabel("output feature")
        fig.colorbar(im, ax=row.tolist(), fraction=0.03)
    return fig


def vulnerability(res: dict):
    """Vulnerability against 1/(1-S) and against features per dimension (1/D*)."""
    v, per_dim = np.asarray(res["vulnerability"], float), np.asarray(res["features_per_dim"], float)
    inv_density = 1 / (1 - np.asarray(res["sparsity"]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.plot(inv_density, v, "o-"), a.set_xscale("log")
    a.set_xlabel("1 / (1 - S)"), a.set_ylabel("vulnerability (relative loss increase)")
    b.scatter(per_dim, v)
    b.set_xlabel("features per dimension (1 / D*)")
    c = res["correlation_with_features_per_dim"]
    b.set_title(f"correlation {'n/a' if c is None else f'{c:.2f}'}", fontsize=9)
    fig.tight_layout()
    return fig
