"""`make demo`: run the paper's experiments, then build demo/report.html and demo/summary.json from their results.

Each topic is an experiment's `demo(quick, progress) -> result` and a section's `section(result) -> (Section,
summary entries)`.
"""
from __future__ import annotations

import time
from pathlib import Path

from monosemantic.experiments import dictionaries, hybrids, phase, real, road1, road2, toy, transition, unfolding
from monosemantic.experiments import circuits, correlated, diagrams, dynamics, nonuniform
from monosemantic.experiments import lm
from monosemantic.report import sections
from monosemantic.report.html import write_report
from monosemantic.report.sections.overview import picture
from monosemantic.runs import check_writable_dir, write_json

# (experiment, section) per topic, in report order. Keep each under a minute.
TOPICS = [(toy.demo, sections.toy.section), (phase.demo, sections.phase.section),
          (road1.demo, sections.road1.section), (dictionaries.demo, sections.dictionary.section),
          (unfolding.demo, sections.unfolding.section), (transition.demo, sections.transition.section)]
TOPICS += [(diagrams.demo, sections.diagrams.section), (dynamics.demo, sections.dynamics.section),
           (nonuniform.demo, sections.nonuniform.section), (correlated.demo, sections.correlated.section)]
TOPICS += [(circuits.demo, sections.circuits.section)]
TOPICS += [(road2.demo, sections.road2.section), (hybrids.demo, sections.road2.front_section)]
TOPICS += [(real.demo, sections.real.section)]
TOPICS += [(lm.demo, sections.lm.section)]


def _topic(run) -> str:
    return run.__module__.rsplit(".", 1)[-1]


def run_demo(out: str | Path, quick: bool = False, progress: bool = False, say=None) -> tuple[Path, Path]:
    """Every topic's experiment, then the page. say: called with one line per finished topic (the CLI: stderr)."""
    out = check_writable_dir(out)  # before minutes of training, not after
    start = time.perf_counter()
    results = []
    for i, (run, _) in enumerate(TOPICS, 1):
        t = time.perf_counter()
        results.append(run(quick, progress))
        if say:
            say(f"demo {i}/{len(TOPICS)}: {_topic(run)} in {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    built, summary = [], {}
    for (_, build), result in zip(TOPICS, results):
        sec, part = build(result)
        built.append(sec)
        summary.update(part)
    summary["demo_wall_s"] = time.perf_counter() - start
    report = write_report(out / "report.html", "monosemantic: solving superposition, measured", built,
                          intro="Every figure below was trained and measured by `make demo` on this machine; "
                                "each is also a PNG and an SVG in figures/ beside this page.",
                          lead=picture(summary))
    summary_path = out / "summary.json"
    write_json(summary_path, summary)
    if say:
        say(f"demo: the page and its figures (PNG and SVG) in {time.perf_counter() - t:.0f} s")
    return report, summary_path
