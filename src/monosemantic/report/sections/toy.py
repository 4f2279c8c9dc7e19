"""The report's toy-model section: the paper's n=5, m=2 layouts and the n=20, m=5 bars."""
from __future__ import annotations

from monosemantic.report.figures.toy import geometry_plane, loss_curves, norm_bars, wtw_heatmaps
from monosemantic.report.html import Section, figure, table


def section(result: dict) -> tuple[Section, dict]:
    steps, seeds, a, b = result["steps"], result["seeds"], result["n5m2"], result["n20m5"]
    sec = Section("Toy models of superposition (Elhage et al. 2022)")
    sec.text(f"ReLU-output model x' = ReLU(W^T W x + b) against the linear model, AdamW lr 1e-3, batch 1024, "
             f"{steps} steps, best of {seeds} seeds per sparsity for the ReLU model.")
    titles = [f"ReLU, S={s}: {g}" for s, g in zip(a["sparsity"], a["relu-output"]["geometry"])]
    ltitles = [f"linear, S={s}" for s in a["sparsity"]]
    sec.add("<h3>n=5, m=2, I<sub>i</sub> = 0.9<sup>i</sup>: features in the hidden plane</h3>")
    sec.add(figure(geometry_plane(list(a["relu-output"]["W"]) + list(a["linear"]["W"]), titles + ltitles)))
    sec.add(table([{"sparsity": s, "ReLU represented": r, "ReLU geometry": g, "ReLU loss": lr,
                    "linear represented": q, "linear loss": ll}
                   for s, r, g, lr, q, ll in zip(a["sparsity"], a["relu-output"]["represented"],
                                                 a["relu-output"]["geometry"], a["relu-output"]["loss"],
                                                 a["linear"]["represented"], a["linear"]["loss"])]))
    sec.add("<h3>n=20, m=5, I<sub>i</sub> = 0.7<sup>i</sup>: W<sup>T</sup>W and feature norms</h3>")
    d = b["density"]
    sec.add(figure(wtw_heatmaps([b["linear"]["W"][0]] + list(b["relu-output"]["W"]),
                                ["linear, 1-S=1"] + [f"ReLU, 1-S={x}" for x in d],
                                [b["linear"]["b"][0]] + list(b["relu-output"]["b"]))))
    sec.add(figure(norm_bars([b["linear"]["W"][0]] + list(b["relu-output"]["W"]),
                                       ["linear, 1-S=1"] + [f"ReLU, 1-S={x}" for x in d])))
    sec.text("W^T W with the bias b as the column on the right (blue negative, red positive). Bars are "
             "coloured by superposition, sum over j != i of (W_i_hat . W_j)^2: dark when the feature has a dimension "
             "of its own, yellow when it shares, grey when it is not represented (norm <= 0.5).", note=True)
    sec.add(table([{"1-S": x, "ReLU represented": r, "linear represented": q, "ReLU loss": lr, "linear loss": ll}
                   for x, r, q, lr, ll in zip(d, b["relu-output"]["represented"], b["linear"]["represented"],
                                              b["relu-output"]["loss"], b["linear"]["loss"])]))
    if "train_loss_log" in b["relu-output"]:
        sec.add("<h3>Training loss, n=20, m=5</h3>")
        sec.add(figure(loss_curves([b["relu-output"]["train_loss_log"], b["linear"]["train_loss_log"]],
                                   ["ReLU output (best seed)", "linear"], [f"1-S={x}" for x in d])))
    summary = {
        "toy_n5m2": {str(s): {"relu_represented": r, "relu_geometry": g, "relu_loss": lr, "linear_represented": q}
                     for s, r, g, lr, q in zip(a["sparsity"], a["relu-output"]["represented"],
                                               a["relu-output"]["geometry"], a["relu-output"]["loss"],
                                               a["linear"]["represented"])},
        "toy_n20m5": {"density": d, "relu_represented": b["relu-output"]["represented"],
                      "linear_represented": b["linear"]["represented"]},
    }
    return sec, summary
