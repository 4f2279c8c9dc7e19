"""The report's section on both phase diagrams under the paper's protocol."""
from __future__ import annotations

from monosemantic.report.figures.diagrams import label_maps
from monosemantic.report.html import Section, figure, table


def section(result: dict):
    """Summary key phase_n3m2 (label counts, protocol agreement) and phase_n2m1_protocols."""
    a, b = result["n2m1"], result["n3m2"]
    sec = Section("Both phase diagrams under the paper's protocol")
    sec.text(f"Each point is trained from {a['starts']} random starts; the paper's protocol drops the start of "
             f"highest loss and labels the point by the majority of the rest (a tie goes to the label of lower "
             f"loss). Best of N takes the lowest-loss random start; candidate starts begin from each ideal layout and "
             f"keep the lowest loss. {a['steps']} steps here.")
    sec.add("<h3>n=2, m=1 against the analytic boundary</h3>")
    sec.add(figure(label_maps(a, "n=2, m=1: trained labels per protocol (r of feature 2)")))
    sec.add(table([{"protocol": k, "agreement with the analytic diagram away from the boundary": v,
                    "points there": a["far_points"]} for k, v in a["agreement_with_analytic_far"].items()]))
    sec.add("<h3>n=3, m=2: the third feature's importance r against density</h3>")
    sec.text("Features 1 and 2 have importance 1 (interchangeable: one of them alone is '1/2'), feature 3 has r. "
             "A label lists the represented features (norm > 0.5) and says 'superposed' when two of them have "
             "|cos| >= 0.1.")
    sec.add(figure(label_maps(b, "n=3, m=2: layout reached per protocol")))
    sec.add(table([{"protocol": k, **{name: c for name, c in sorted(v.items())}} for k, v in b["label_counts"].items()]))
    sec.add(table([{"points away from a boundary (candidate map)": b["far_points"],
                    "paper protocol = candidate starts there": b["protocol_agreement_far"],
                    "best of N = candidate starts there": b["best_vs_candidates_far"],
                    "points where a candidate start reached the lowest loss": b["candidate_loss_below_random"]}]))
    summary = {"phase_n3m2": {"grid": len(b["r"]), "steps": b["steps"], "starts": b["starts"],
                              "label_counts": b["label_counts"], "far_points": b["far_points"],
                              "protocol_agreement_far": b["protocol_agreement_far"],
                              "best_vs_candidates_far": b["best_vs_candidates_far"]},
               "phase_n2m1_protocols": {"grid": len(a["r"]), "steps": a["steps"], "starts": a["starts"],
                                        "agreement_with_analytic_far": a["agreement_with_analytic_far"],
                                        "protocol_agreement_far": a["protocol_agreement_far"]}}
    return sec, summary
