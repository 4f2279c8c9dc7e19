"""Figures of toy models in the paper's style: hidden-plane geometry, W^T W, norm/superposition bars."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

import monosemantic.measures as measures


def geometry_plane(Ws: list[torch.Tensor], titles: list[str]):
    """Each feature's direction in a 2-D hidden space (W: [2, n]), coloured by feature index."""
    fig, axes = plt.subplots(1, len(Ws), figsize=(3 * len(Ws), 3.1), squeeze=False)
    for ax, W, title in zip(axes[0], Ws, titles):
        W = W.numpy()
        colors = plt.cm.viridis(np.linspace(0, 0.9, W.shape[1]))
        for i in range(W.shape[1]):
            ax.plot([0, W[0, i]], [0, W[1, i]], color=colors[i], lw=2)
            ax.scatter(W[0, i], W[1, i], color=colors[i], s=25, zorder=3)
        lim = max(1.2, float(np.abs(W).max()) * 1.1)
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
        ax.axhline(0, color="#ddd", lw=0.8), ax.axvline(0, color="#ddd", lw=0.8)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_title(title, fontsize=9)
    return fig


def wtw_heatmaps(Ws: list[torch.Tensor], titles: list[str], bs: list[torch.Tensor] | None = None):
    """W^T W for each model (W: [m, n]): diagonal = feature norms^2, off-diagonal = interference; with `bs`
    (b: [n]) the bias as a column to the right, as the paper draws it. One shared colour scale, [-1, 1]."""
    fig, axes = plt.subplots(1, len(Ws), figsize=(2.5 * len(Ws) + 0.8, 2.6), squeeze=False)
    for k, (ax, W, title) in enumerate(zip(axes[0], Ws, titles)):
        M = (W.T @ W).numpy()
        if bs is not None:  # a blank column, then b
            n = M.shape[0]
            M = np.concatenate([M, np.full((n, 1), np.nan), bs[k].numpy().reshape(n, 1)], axis=1)
            ax.set_xticks([n + 1]), ax.set_xticklabels(["b"], fontsize=7)
        else:
            ax.set_xticks([])
        im = ax.imshow(M, cmap="RdBu", vmin=-1, vmax=1)
        ax.set_yticks([]), ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, pad=0.02)
    return fig


def norm_bars(Ws: list[torch.Tensor], titles: list[str]):
    """Feature norms ||W_i||, each bar coloured by its superposition (dark: none, yellow: much; grey: a feature
    that is not represented, whose direction is noise). Feature 0, the most important, on top."""
    fig, axes = plt.subplots(1, len(Ws), figsize=(2.4 * len(Ws), 2.8), squeeze=False, sharey=True)
    for ax, W, title in zip(axes[0], Ws, titles):
        norms = measures.feature_norms(W[None])[0].numpy()
        sup = measures.superposition(W[None])[0].clamp(0, 1).numpy()
        colors = np.where(measures.represented(W[None])[0].numpy()[:, None], plt.cm.viridis(sup), (0.8, 0.8, 0.8, 1))
        ax.barh(np.arange(len(norms)), norms, color=colors)
        # an explicit reversed range: invert_yaxis() toggles, so on shared axes every second call undoes it
        ax.set_ylim(len(norms) - 0.5, -0.5), ax.set_xlim(0, max(1.1, float(norms.max()) * 1.05))
        ax.set_title(title, fontsize=9), ax.set_xlabel("||W_i||", fontsize=8)
    axes[0][0].set_ylabel("feature (most important on top)", fontsize=8)
    return fig


def nonuniform_trends(res: dict):
    """Along each varied axis: feature 0's D_i and the angle to its nearest represented neighbour."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), squeeze=False)
    for ax, axis in zip(axes[0], ("density", "importance")):
        a = res[axis]
        ang = [np.nan if v is None else v for v in a["nearest_angle_deg"]]
        ax.plot(a["values"], ang, "o-", color="#4c72b0", label="angle to nearest (deg)")
        ax.axhline(72, color="#999", ls="--", lw=0.7)
        ax.set_xscale("log"), ax.set_xlabel(f"{axis} of feature 0"), ax.set_ylabel("degrees")
        tw = ax.twinx()
        tw.plot(a["values"], a["D_0"], "s:", color="#dd8452", label="D_0")
        tw.set_ylabel("D_0", color="#dd8452"), tw.set_ylim(-0.05, 1.05)
        ax.set_title(f"feature 0's {axis} varied (dashed: 72, the regular pentagon)", fontsize=8)
    fig.tight_layout()
    return fig
