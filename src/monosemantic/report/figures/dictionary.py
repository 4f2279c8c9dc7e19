"""Dictionary-learning figures: recovery of known features against training time, and per-feature best cosines."""
from __future__ import annotations

import numpy as np

from monosemantic.report.html import plt  # pyplot on the Agg backend


def plots(trajs: dict, best: dict):
    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    for name, t in trajs.items():
        xs, ys = zip(*t)
        ax[0].plot(xs, ys, marker="o" if len(t) < 3 else None, label=name)
    ax[0].axhline(0.98, color="grey", lw=0.8, ls="--")
    ax[0].set(xlabel="training seconds (this machine)", ylabel="recovered@0.9 (share of true features)",
              title="recovery against training time", ylim=(-0.02, 1.02))
    ax[0].legend(fontsize=8)
    bins = np.linspace(0, 1, 41)
    for name, b in best.items():
        ax[1].hist(b, bins=bins, histtype="step", lw=1.5, label=name)
    ax[1].axvline(0.9, color="grey", lw=0.8, ls="--")
    ax[1].set(xlabel="best cosine of each true feature with any atom", ylabel="true features", yscale="log",
              title="how well each true feature is found")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def latent_density(freq: np.ndarray):
    """Histogram of how often each latent fires (freq: [latents], shares of samples), log-spaced; dead latents
    are counted in the title, since a log axis has no zero."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    live = freq[freq > 0]
    if len(live):
        lo = max(float(live.min()), 1e-6)
        ax.hist(live, bins=np.logspace(np.log10(lo), np.log10(max(float(live.max()), lo * 10)), 40))
    ax.set(xscale="log", xlabel="share of samples on which the latent fires", ylabel="latents",
           title=f"latent density ({int((freq == 0).sum())} dead of {len(freq)})")
    return fig
