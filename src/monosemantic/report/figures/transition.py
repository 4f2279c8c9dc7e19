"""Figures of the recovery phase transition, and of trained toy models against the Welch bound.

Random Gaussian dictionaries (n unit features in m dims), non-negative k-sparse codes, unfolded by OMP and by exact
L1 (the basis-pursuit limit of the positive lasso); the measured probability of exact support recovery against
rho = k/m beside the Donoho-Tanner simplex curve and the mutual-coherence guarantee. Then toy ReLU-output models'
represented columns against the Welch bound.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from monosemantic.bounds import welch_bound

def plot(curves: dict, toys: list[dict] | None = None):
    """Recovery against rho = k/m for each method in curves; with toys, a last panel of toy W's coherence."""
    methods = [m for m in ("l1", "omp") if curves.get(m)]
    fig, axes = plt.subplots(1, len(methods) + bool(toys), figsize=(5 * (len(methods) + bool(toys)), 4),
                             squeeze=False)
    axes = axes[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    titles = {"l1": "exact L1 (positive lasso, alpha -> 0)", "omp": "OMP"}
    for ax, method in zip(axes, methods):
        title = titles[method]
        for i, c in enumerate(curves[method]):
            m, n, col = c["m"], c["n"], colors[i % len(colors)]
            rho = np.array(c["ks"]) / m
            ax.plot(rho, c["success"], "o-", color=col, ms=3, label=f"n={n} (m/n={m / n:.3g})")
            ax.axvline(c["dt_k"] / m, color=col, ls="--", lw=1)
            # coherence guarantees: from the Welch bound (the best any F could give) and from this F's mu
            ax.plot(c["k_guaranteed_welch"] / m, 1.04, "^", color=col, ms=7)
            ax.plot(c["k_guaranteed_mu"] / m, 1.04, "v", color=col, ms=7, mfc="none")
        ax.set_xlabel("rho = k / m")
        ax.set_ylabel("P(exact support recovery)")
        ax.set_title(f"{title}, m={curves[method][0]['m']}")
        ax.set_ylim(-0.03, 1.09)
        ax.legend(fontsize=7, loc="center right")
    # under the panels, not on the curves
    fig.supxlabel("dashed: Donoho-Tanner simplex rho(m/n);  ^ k < (1+1/Welch)/2;  v k < (1+1/mu(F))/2", fontsize=9)
    if not toys:
        fig.tight_layout()
        return fig
    ax = axes[-1]
    for j, m in enumerate(sorted({t["m"] for t in toys})):
        ns = np.arange(m, 4 * m + 1)  # the bound exists for whole numbers of vectors
        ax.plot(ns / m, [welch_bound(int(v), m) for v in ns], color=colors[j], label=f"Welch bound, m={m}")
        pts = [t for t in toys if t["m"] == m]
        x = [t["represented"] / m for t in pts]
        ax.plot(x, [t["coherence"] for t in pts], "o", color=colors[j], mfc="none", label="toy W, all pairs")
        ax.plot(x, [t["coherence_no_antipodal"] for t in pts], "s", color=colors[j], label="toy W, no antipodal")
        ax.plot(x, [t["random"] for t in pts], "x", color=colors[j], label="random directions (median)")
    ax.set_xlabel("represented features / m")
    ax.set_ylabel("coherence max |cos|")
    ax.set_title("trained toy models (ReLU output)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside: the points fill the whole square
    fig.tight_layout()
    return fig


