"""Phase diagrams as label maps: one panel per protocol, each label its own colour."""
from __future__ import annotations

import numpy as np

from monosemantic.report.html import plt  # pyplot on the Agg backend


def label_maps(res: dict, title: str):
    """res["labels"]: protocol -> [r][density] label strings; res["r"], res["density"] the axes (log)."""
    maps = res["labels"]
    names = sorted({v for grid in maps.values() for row in grid for v in row})
    cmap = plt.get_cmap("tab10")
    r, s = np.asarray(res["r"]), np.asarray(res["density"])
    fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.4), squeeze=False, sharey=True,
                             layout="constrained")  # which keeps the key below clear of the axes' labels
    for ax, (proto, grid) in zip(axes[0], maps.items()):
        codes = np.vectorize(names.index)(np.asarray(grid, dtype=object)).astype(float)
        ax.pcolormesh(np.arange(len(r) + 1), np.arange(len(s) + 1), codes.T, cmap=cmap, vmin=-0.5, vmax=9.5)
        ax.set_xticks(np.arange(len(r)) + 0.5, [f"{v:.2g}" for v in r], fontsize=6, rotation=90)
        ax.set_yticks(np.arange(len(s)) + 0.5, [f"{v:.2g}" for v in s], fontsize=6)
        ax.set_title(proto, fontsize=9), ax.set_xlabel("relative importance r", fontsize=8)
    axes[0][0].set_ylabel("density 1-S", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(len(names))]
    fig.legend(handles, names, fontsize=7, loc="outside lower center", ncol=min(4, len(names)), frameon=False)
    fig.suptitle(title, fontsize=9)
    return fig
