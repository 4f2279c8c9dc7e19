"""The report's section on correlated features: collapse toward principal components, local bases."""
from __future__ import annotations

import torch

from monosemantic.report.figures.toy import geometry_plane
from monosemantic.report.html import Section, figure, table


def section(res: dict):
    """Summary key correlated_collapse."""
    c, lb = res["collapse"], res["local_bases"]
    sec = Section("Correlated features: collapse toward principal components, local almost-orthogonal bases")
    sec.text(f"Two correlated pairs (features 0-1 and 2-3, on together, magnitudes independent) in m=2, equal "
             f"importance, {c['steps']} steps, best of {c['seeds']}. Alignment with the first principal component "
             f"is the share of a pair's weight energy along (e_a + e_b)/sqrt 2: 1/2 when the pair sits side by side "
             f"(orthogonal), 1 when it has collapsed onto one direction.")
    sec.add(figure(geometry_plane([torch.tensor(w) for w in c["W"]], [f"1-S = {d:.3g}" for d in c["density"]])))
    sec.add(table([{"1-S": d, "alignment with the first PC": a, "cos within a pair": cw, "represented": r}
                   for d, a, cw, r in zip(c["density"], c["alignment"], c["cos_within_pair"], c["represented"])]))
    sec.text(f"Local bases: {lb['n_sets']} correlated sets of {lb['set_size']} features in m={lb['m']}: mean |cos| "
             f"between represented features of one set against features of different sets.")
    sec.add(table([{"1-S": d, "within a set": w, "between sets": b, "represented": r}
                   for d, w, b, r in zip(lb["density"], lb["within"], lb["between"], lb["represented"])]))
    return sec, {"correlated_collapse": {"density": c["density"], "alignment": c["alignment"],
                                         "local_bases": {"density": lb["density"], "within": lb["within"],
                                                         "between": lb["between"]}}}
