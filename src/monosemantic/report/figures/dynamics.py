"""Learning-dynamics figure: every feature's D_i over training with the energy levels, and the loss beneath it
with the sudden drops and the detected jumps marked."""
from __future__ import annotations

import numpy as np

from monosemantic.measures import FRACTIONS, LEVEL_NAMES
from monosemantic.report.html import plt  # pyplot on the Agg backend


def dynamics(res: dict):
    steps = np.asarray(res["steps"])
    D = np.asarray(res["D"])  # [snapshots, n]
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 5.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, D.shape[1]))
    for i in range(D.shape[1]):
        a.plot(steps, D[:, i], color=colors[i], lw=0.8, alpha=0.8)
    for f in FRACTIONS:
        a.axhline(f, color="#999", ls="--", lw=0.6)
        a.text(steps[-1] * 1.01, f, LEVEL_NAMES[f], fontsize=7, va="center")
    for j in res["jumps"]:
        a.axvspan(j["steps"][0], j["steps"][1], color="#dd8452" if j["with_sudden_drop"] else "#bbbbbb", alpha=0.15)
    a.set_ylabel("feature dimensionality D_i"), a.set_ylim(-0.05, 1.1)
    a.set_title(f"{res['jumps_detected']} jumps (D_i moves > {res['jump_threshold']} within {res['jump_steps']} "
                f"steps, shaded), {res['jumps_with_sudden_drop']} with a sudden loss drop (orange)", fontsize=9)
    b.plot(steps, res["loss"], color="#4c72b0")
    for s in res["sudden_drops"]:
        b.axvline(s, color="#c44e52", lw=0.8, ls=":")
    b.set_yscale("log"), b.set_xlabel("training step"), b.set_ylabel("eval loss")
    b.set_title(f"sudden drops (red: more than {res['sudden_factor']:g}x the median drop around them)", fontsize=9)
    fig.tight_layout()
    return fig
