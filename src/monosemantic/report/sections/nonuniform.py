"""The report's non-uniform superposition section."""
from __future__ import annotations

import torch

from monosemantic.report.figures.toy import geometry_plane, nonuniform_trends
from monosemantic.report.html import Section, figure, table


def section(res: dict):
    """Summary key nonuniform: the switch points along density and along importance."""
    sec = Section("Non-uniform superposition: one feature denser, sparser, more or less important")
    sec.text(f"n={res['n']}, m={res['m']}, every feature of importance 1 and density {res['others_density']} except "
             f"feature 0, whose density (first row) or importance (second row) is varied; {res['steps']} steps, best "
             f"of {res['seeds']} starts per point. Feature 0 is drawn darkest.")
    for axis, name in (("density", "1-S of feature 0"), ("importance", "importance of feature 0")):
        a = res[axis]
        sec.add(figure(geometry_plane([torch.tensor(w) for w in a["W"]],
                                      [f"{name} {v:.3g}\n{lab.split(' (')[0]}" for v, lab in zip(a["values"], a["labels"])])))
        sec.add(table([{"between": f"{s['between'][0]:.3g} and {s['between'][1]:.3g}", "from": s["from"], "to": s["to"]}
                       for s in a["switches"]] or [{"switch": "none along this axis"}]))
    sec.add(figure(nonuniform_trends(res)))
    sec.text("The paper reports that a denser feature pushes the others away and that a sparser one eventually "
             "collapses the pentagon into two digons (antipodal pairs). The angle from feature 0 to its nearest "
             "represented neighbour (72 degrees in a regular pentagon) measures the push; the switch table gives "
             "where each layout gives way.", note=True)
    return sec, {"nonuniform": {axis: {"values": res[axis]["values"], "labels": res[axis]["labels"],
                                       "switches": res[axis]["switches"],
                                       "nearest_angle_deg": res[axis]["nearest_angle_deg"]}
                                for axis in ("density", "importance")} | {"steps": res["steps"], "seeds": res["seeds"]}}
