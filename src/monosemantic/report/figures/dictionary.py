"""Dictionary-learning figures: recovery of known features against training time, per-feature best cosines, the
SAEs' training curves, the L0-FVU frontier and latent densities. Each takes results (plain dicts and arrays) and
returns a matplotlib figure."""
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


def latent_density(freq):
    """Histogram of how often each latent fires (freq: [latents], shares of samples; or a dict name -> freq, one
    panel each), log-spaced; dead latents are counted in the title, since a log axis has no zero."""
    freqs = freq if isinstance(freq, dict) else {"": freq}
    fig, axes = plt.subplots(1, len(freqs), figsize=(6 * len(freqs), 3.4), squeeze=False)
    for ax, (name, f) in zip(axes[0], freqs.items()):
        f = np.asarray(f)
        live = f[f > 0]
        if len(live):
            lo = max(float(live.min()), 1e-6)
            ax.hist(live, bins=np.logspace(np.log10(lo), np.log10(max(float(live.max()), lo * 10)), 40))
        ax.set(xscale="log", xlabel="share of samples on which the latent fires", ylabel="latents",
               title=f"{name + ': ' if name else ''}latent density ({int((f == 0).sum())} dead of {len(f)})")
    return fig


def training_curves(histories: dict):
    """An SAE's training history per name (`SparseAutoencoder.history_`, or `result["history"]` of `sae train`):
    the training objective, FVU, L0, and dead latents (solid) with the restarts so far (dashed) against samples
    seen."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.4), sharex=True)
    panels = [("loss", "training objective (batch mean)", "log"), ("fvu", "FVU (batch mean)", "log"),
              ("l0", "L0 (active latents per sample)", "linear"), ("dead", "latents", "linear")]
    for ax, (key, label, scale) in zip(axes.flat, panels):
        for i, (name, h) in enumerate(histories.items()):
            ax.plot(h["samples"], h[key], color=f"C{i}", label=name, marker="o" if len(h["samples"]) < 3 else None)
            if key == "dead" and "resampled" in h:
                ax.plot(h["samples"], h["resampled"], color=f"C{i}", ls="--")
        ax.set(ylabel=label, yscale=scale)
    for ax in axes[1]:
        ax.set_xlabel("training samples seen")
    axes[1][1].set_title("dead (solid: silent for the last dead_after samples) and restarted so far (dashed)")
    axes[0][1].legend()
    return fig


def frontier(points: list[dict], true_l0: float | None = None):
    """The L0-FVU frontier (left) and recovery against L0 (right) of a sweep of SAEs: points carry method, l0,
    fvu and recovered (share of true features matched at cosine > 0.9), one line per method; true_l0: the data's
    mean number of active true features, drawn as a dashed line."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    if true_l0:
        for ax in (a, b):
            ax.axvline(true_l0, color="grey", lw=0.8, ls="--", label="true L0 of the data")
    methods = list(dict.fromkeys(p["method"] for p in points))
    for method, marker in zip(methods, "osD^v"):
        pts = sorted((p for p in points if p["method"] == method), key=lambda p: p["l0"])
        l0 = [p["l0"] for p in pts]
        a.plot(l0, [p["fvu"] for p in pts], marker=marker, mec="black", mew=0.6, label=method)
        b.plot(l0, [p["recovered"] for p in pts], marker=marker, mec="black", mew=0.6, label=method)
    a.set(xlabel="L0 (active latents per sample, held out)", ylabel="FVU (held out)", xscale="log", yscale="log",
          title="sparsity against reconstruction (lower left is better)")
    b.set(xlabel="L0 (active latents per sample, held out)", ylabel="recovered@0.9", xscale="log", ylim=(-0.02, 1.02),
          title="true features recovered at that sparsity")
    b.legend()
    return fig
