"""The language models trained here: loss against neuron monosemanticity and against road 2's recoverability."""
from __future__ import annotations

from monosemantic.report.html import plt  # pyplot on the Agg backend

COLORS = {"dense": "C0", "l1": "C3", "moe-flop": "C2", "moe-width": "C4", "hybrid-joint": "C1"}


def trade(result: dict):
    """Two panels over the variants: LM loss against neuron monosemanticity, and against CE loss recovered by an SAE
    at fixed L0. Error bars: the seeds' standard deviation (variants with several seeds); L1 points carry their
    strength and are joined in order of it."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = (("neuron_monosemanticity", "neuron_monosemanticity_std", "neuron monosemanticity (higher: more)"),
              ("ce_recovered", None, "SAE CE loss recovered (zero ablation)"))
    rows = result["table"]
    for ax, (key, std, label) in zip(axes, panels):
        for variant in COLORS:
            pts = [r for r in rows if r["variant"] == variant and r[key] is not None and r["lm_loss"] is not None]
            if not pts:
                continue
            xs, ys = [r[key] for r in pts], [r["lm_loss"] for r in pts]
            ax.errorbar(xs, ys, xerr=[r.get(std) or 0 for r in pts] if std else None,
                        yerr=[r["lm_loss_std"] or 0 for r in pts], marker="o", ms=7, capsize=3,
                        ls="-" if variant == "l1" else "", color=COLORS[variant], label=variant)
            if variant == "l1":
                for r in pts:
                    ax.annotate(f"{r['strength']:g}", (r[key], r["lm_loss"]), textcoords="offset points",
                                xytext=(5, 4), fontsize=8)
        ax.set(xlabel=label, ylabel="held-out loss (nats per byte)")
    axes[0].set_title("removing superposition: the loss it costs")
    axes[1].set_title("road 2 on the MLP: how much an SAE keeps")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
