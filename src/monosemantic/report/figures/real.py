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
