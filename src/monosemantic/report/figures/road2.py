"""Road 2 on toy activations and road 3's front: pure figures from the experiments' results."""
from __future__ import annotations

from monosemantic.report.html import plt  # pyplot on the Agg backend


def recovery_curves(result: dict):
    """Recovered (count) and MMCS against dictionary size / n, one line per model, sparsity and dictionary."""
    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    for r in result["models"]:
        for arch in sorted({d["arch"] for d in r["dictionaries"]}):
            ds = [d for d in r["dictionaries"] if d["arch"] == arch]
            label = f"n={r['n']} m={r['m']} S={r['sparsity']} {arch}"
            ratios = [d["ratio"] for d in ds]
            ax[0].plot(ratios, [d["recovered"] / r["n"] for d in ds], marker="o", label=label)
            ax[1].plot(ratios, [d["mmcs"] for d in ds], marker="o", label=label)
    ax[0].set(xscale="log", xlabel="dictionary size / n", ylabel="recovered@0.9 / n (represented and matched)",
              title="features recovered from h = W x", ylim=(-0.02, 1.02))
    ax[1].set(xscale="log", xlabel="dictionary size / n", ylabel="MMCS over represented features",
              title="mean max cosine", ylim=(0, 1.02))
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def front_plot(result: dict):
    """Model loss against features recovered, one series per method; the straight line joins the two ends."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front, v = result["front"], result["verdict"]
    for method, pts in front.items():
        style = dict(marker="s", ms=9) if method in ("road1", "road2") else dict(marker="o")
        ax.plot([p["loss"] for p in pts], [p["recovered"] for p in pts], ls="-" if len(pts) > 1 else "", label=method,
                **style)
    ends = (v["road2"], v["road1"])
    ax.plot([e["loss"] for e in ends], [e["recovered"] for e in ends], color="grey", ls="--", lw=0.8,
            label="line between the ends")
    ax.set(xlabel="model loss (held out)", ylabel="recovered: features represented and matched at cos > 0.9",
           title="the hybrid front")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
