"""`make demo`: run the paper's experiments, then build demo/report.html and demo/summary.json from their results.

Each topic is an experiment's `demo(quick, progress) -> result` and a section's `section(result) -> (Section,
summary entries)`.
"""
from __future__ import annotations

import time
from pathlib import Path

from monosemantic.experiments import dictionaries, hybrids, phase, road1, road2, toy, transition, unfolding
from monosemantic.report import sections
from monosemantic.report.html import write_report
from monosemantic.runs import write_json

# (experiment, section) per topic, in report order. Keep each under a minute.
TOPICS = [(toy.demo, sections.toy.section), (phase.demo, sections.phase.section),
          (road1.demo, sections.road1.section), (dictionaries.demo, sections.dictionary.section),
          (unfolding.demo, sections.unfolding.section), (transition.demo, sections.transition.section)]
TOPICS += [(road2.demo, sections.road2.section), (hybrids.demo, sections.road2.front_section)]


def run_demo(out: str | Path, quick: bool = False, progress: bool = False) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = [run(quick, progress) for run, _ in TOPICS]
    built, summary = [], {}
    for (_, build), result in zip(TOPICS, results):
        sec, part = build(result)
        built.append(sec)
        summary.update(part)
    summary["demo_wall_s"] = time.perf_counter() - start
    report = write_report(out / "report.html", "monosemantic: solving superposition, measured", built,
                          intro="Every figure below was trained and measured by `make demo` on this machine.")
    summary_path = out / "summary.json"
    write_json(summary_path, summary)
    return report, summary_path
