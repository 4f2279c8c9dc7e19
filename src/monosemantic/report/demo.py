"""`make demo`: train the paper's figures and write demo/report.html and demo/summary.json.

Each topic contributes one function that returns a report section and its summary entries.
"""
from __future__ import annotations

import time
from pathlib import Path

from monosemantic.report import Section, figure, table, write_report
from monosemantic.report import toy_plots
from monosemantic.report.figures.dictionary import dictionary_section
from monosemantic.report.figures.phase import phase_section
from monosemantic.report.figures.sensing import sensing_section
from monosemantic.report.figures.transition import transition_section
from monosemantic.experiments.road1 import road1_section
from monosemantic.runs import write_json
from monosemantic.toy import figures


def toy_section(quick: bool, progress: bool) -> tuple[Section, dict]:
    steps, seeds = (2000, 4) if quick else (10_000, 20)
    a = figures.n5m2(steps, seeds, progress=progress)
    b = figures.n20m5(steps, 1 if quick else 3, progress=progress)
    sec = Section("Toy models of superposition (Elhage et al. 2022)")
    sec.text(f"ReLU-output model x' = ReLU(W^T W x + b) against the linear model, AdamW lr 1e-3, batch 1024, "
             f"{steps} steps, best of {seeds} seeds per sparsity for the ReLU model.")
    titles = [f"ReLU, S={s}: {g}" for s, g in zip(a["sparsity"], a["relu-output"]["geometry"])]
    ltitles = [f"linear, S={s}" for s in a["sparsity"]]
    sec.add("<h3>n=5, m=2, I<sub>i</sub> = 0.9<sup>i</sup>: features in the hidden plane</h3>")
    sec.add(figure(toy_plots.geometry_plane(list(a["relu-output"]["W"]) + list(a["linear"]["W"]), titles + ltitles)))
    sec.add(table([{"sparsity": s, "ReLU represented": r, "ReLU geometry": g, "ReLU loss": lr,
                    "linear represented": q, "linear loss": ll}
                   for s, r, g, lr, q, ll in zip(a["sparsity"], a["relu-output"]["represented"],
                                                 a["relu-output"]["geometry"], a["relu-output"]["loss"],
                                                 a["linear"]["represented"], a["linear"]["loss"])]))
    sec.add("<h3>n=20, m=5, I<sub>i</sub> = 0.7<sup>i</sup>: W<sup>T</sup>W and feature norms</h3>")
    d = b["density"]
    sec.add(figure(toy_plots.wtw_heatmaps([b["linear"]["W"][0]] + list(b["relu-output"]["W"]),
                                          ["linear, 1-S=1"] + [f"ReLU, 1-S={x}" for x in d])))
    sec.add(figure(toy_plots.norm_bars([b["linear"]["W"][0]] + list(b["relu-output"]["W"]),
                                       ["linear, 1-S=1"] + [f"ReLU, 1-S={x}" for x in d])))
    sec.text("Bars are coloured by superposition, sum over j != i of (W_i_hat . W_j)^2: dark when the feature "
             "has a dimension of its own, yellow when it shares.", note=True)
    sec.add(table([{"1-S": x, "ReLU represented": r, "linear represented": q, "ReLU loss": lr, "linear loss": ll}
                   for x, r, q, lr, ll in zip(d, b["relu-output"]["represented"], b["linear"]["represented"],
                                              b["relu-output"]["loss"], b["linear"]["loss"])]))
    summary = {
        "toy_n5m2": {str(s): {"relu_represented": r, "relu_geometry": g, "relu_loss": lr, "linear_represented": q}
                     for s, r, g, lr, q in zip(a["sparsity"], a["relu-output"]["represented"],
                                               a["relu-output"]["geometry"], a["relu-output"]["loss"],
                                               a["linear"]["represented"])},
        "toy_n20m5": {"density": d, "relu_represented": b["relu-output"]["represented"],
                      "linear_represented": b["linear"]["represented"]},
    }
    return sec, summary


# One entry per topic: (quick, progress) -> (Section, summary entries). Keep each under a minute.
SECTIONS = [toy_section, phase_section, road1_section, dictionary_section, sensing_section, transition_section]


def run_demo(out: str | Path, quick: bool = False, progress: bool = False) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sections, summary = [], {}
    for make in SECTIONS:
        sec, part = make(quick, progress)
        sections.append(sec)
        summary.update(part)
    summary["demo_wall_s"] = time.perf_counter() - start
    report = write_report(out / "report.html", "monosemantic: solving superposition, measured", sections,
                          intro="Every figure below was trained and measured by `make demo` on this machine.")
    summary_path = out / "summary.json"
    write_json(summary_path, summary)
    return report, summary_path
