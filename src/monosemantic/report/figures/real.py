"""The real model's dictionary: how often its latents fire."""
from __future__ import annotations

import numpy as np

from monosemantic.report.html import plt  # pyplot on the Agg backend


def density(result: dict):
    h = result["density"]
    edges, counts = np.array(h["log10_density_edges"]), np.array(h["counts"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0", edgecolor="white")
    ax.set(xlabel="log10 firing rate on the test tokens", ylabel="latents",
           title=f"latent density at {result['site']} ({result['latents']} latents, {h['dead']} dead)")
    fig.tight_layout()
    return fig


def monosemanticity(result: dict):
    """Two histograms on the same bins: the MLP neurons' and the latents' monosemanticity, on the same tokens."""
    t = result["tensors"]
    neurons, feats = np.asarray(t["neurons"]["monosemanticity"]), np.asarray(t["features"]["monosemanticity"])
    bins = np.linspace(0, 1, 26)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharex=True)
    for ax, v, name, color in ((axes[0], neurons, f"MLP neurons ({result['neuron_site']})", "C1"),
                               (axes[1], feats, f"SAE latents ({result['site']})", "C0")):
        v = v[np.isfinite(v)]
        ax.hist(v, bins=bins, color=color, edgecolor="white")
        ax.axvline(np.median(v), color="k", linestyle="--", linewidth=1)
        ax.set(xlabel="monosemanticity (1 - normalised entropy of top tokens)", ylabel="units",
               title=f"{name}: {len(v)} scored, median {np.median(v):.3f}")
    fig.tight_layout()
    return fig


def pitfall(result: dict):
    """Cosine of pairs of activation rows against the Jaccard overlap of their SAE supports (random pairs)."""
    p, pit = result["tensors"]["pairs"], result["pitfall"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(p["cos"], p["jaccard"], s=4, alpha=0.4, color="C0")
    ax.set(xlabel=f"cosine of the {result['site']} activations", ylabel="Jaccard overlap of the SAE supports",
           title=f"{len(p['cos'])} random pairs of test tokens (Pearson r over all {pit['pairs']} pairs: "
                 f"{pit['correlation']:.2f})")
    fig.tight_layout()
    return fig
