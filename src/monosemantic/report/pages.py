"""`monosemantic report RUN_DIR...`: the report's page built from run directories (toy runs, dictionary runs).

Each run directory becomes one section: its figures (the same functions as the demo's), its numbers as a table.
`figures(run_dir)` gives the same figures to Python as matplotlib figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from monosemantic.errors import InputError
from monosemantic.report.figures.dictionary import latent_density, training_curves
from monosemantic.report.figures.toy import geometry_plane, loss_curves, norm_bars, wtw_heatmaps
from monosemantic.report.html import Section, figure, table, write_report
from monosemantic.runs import check_output_path, read_json

DENSITY_ROWS = 10_000  # data rows coded for a dictionary's latent densities


def figures(run_dir: str | Path) -> dict:
    """The report's figures of a toy or dictionary run directory, by name, as matplotlib figures (to show in a
    notebook, restyle, or save with `fig.savefig` or `report.html.save_figure`). Toy runs: geometry (m = 2 only),
    wtw, norms, loss; dictionary runs: training (SAEs), latent_density (when the training data are still there)."""
    run_dir = Path(run_dir)
    kind = _kind(run_dir)
    if kind == "toy":
        from monosemantic.experiments.toy import load_run

        return _toy_figures(load_run(run_dir))
    return _dictionary_figures(run_dir)[0]


def _toy_figures(toy) -> dict:
    c = toy.config
    labels = [f"S={s}" for s in c.sparsity]
    W = [w.float() for w in toy.W]
    figs = {"geometry": geometry_plane(W, labels)} if c.m == 2 else {}
    figs.update(wtw=wtw_heatmaps(W, labels), norms=norm_bars(W, labels))
    log = toy.result.get("train_loss_log")
    if log and log.get("steps"):
        figs["loss"] = loss_curves([log], ["training loss"], labels)
    return figs


def _dictionary_figures(run_dir: Path) -> tuple[dict, np.ndarray | None]:
    """(figures, latent densities or None when the training data are gone)."""
    from monosemantic.data import load_data
    from monosemantic.dictionary import load

    config, result = read_json(run_dir / "config.json"), read_json(run_dir / "result.json")
    figs = {}
    if isinstance(result.get("history"), dict) and result["history"].get("step"):
        figs["training"] = training_curves({config.get("arch", "SAE"): result["history"]})
    freq = None
    data_path = config.get("data_resolved") or config.get("data")  # resolved: read from any directory
    if data_path and Path(data_path).exists():
        codes = load(run_dir).transform(load_data(data_path).X[:DENSITY_ROWS])
        freq = np.asarray((codes != 0).mean(axis=0)).ravel()
        figs["latent_density"] = latent_density(freq)
    return figs, freq


def toy_section(run_dir: Path) -> Section:
    from monosemantic.experiments.toy import load_run

    toy = load_run(run_dir)
    c = toy.config
    sec = Section(f"Toy run {run_dir.name}: {c.model}, n={c.n}, m={c.m}")
    sec.text(f"{len(c.sparsity)} sparsities, best of {c.seeds} seeds each, {c.steps} steps, batch {c.batch}.")
    alts = {"geometry": "features in the hidden plane", "wtw": "W^T W", "norms": "feature norms",
            "loss": "training loss"}
    for name, fig in _toy_figures(toy).items():
        sec.add(figure(fig, alts[name]))
    rows = toy.measures()
    sec.add(table([{"sparsity": r["sparsity"], "loss": loss, "represented_features": r["represented_features"],
                    "dims_per_feature": r["dims_per_feature"], "geometry": r["geometry"]}
                   for r, loss in zip(rows, toy.loss)]))
    return sec


def dictionary_section(run_dir: Path) -> Section:
    from monosemantic.dictionary import load

    config, result = read_json(run_dir / "config.json"), read_json(run_dir / "result.json")
    est = load(run_dir)
    sec = Section(f"Dictionary run {run_dir.name}: {config.get('arch')}, {est.components_.shape[0]} atoms")
    sec.add(table([{k: v for k, v in result.items() if not isinstance(v, (list, dict))}]))
    if (run_dir / "scores.json").exists():
        scores = read_json(run_dir / "scores.json")
        sec.text(f"Scores against the truth in {scores.get('truth')} ({scores.get('samples')} samples):")
        sec.add(table([{k: v for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}]))
    figs, freq = _dictionary_figures(run_dir)
    if "training" in figs:
        sec.add(figure(figs["training"], "training curves"))
        sec.text("Training objective, FVU, L0 and dead latents over training: means over the batches between "
                 "records.", note=True)
    data_path = config.get("data")
    if freq is not None:
        sec.add(figure(figs["latent_density"], "latent densities"))
        sec.text(f"Latent density: the share of the first {DENSITY_ROWS:,} samples (or all, if fewer) of {data_path} "
                 f"on which each latent fires; {int((freq == 0).sum())} latents never fire there.", note=True)
    else:
        sec.text(f"The training data ({data_path}) is not here, so no latent densities.", note=True)
    return sec


def _kind(run_dir: Path) -> str:
    if not (run_dir / "config.json").is_file():
        raise InputError(f"not a run directory (no config.json): {run_dir}")
    kind = read_json(run_dir / "config.json").get("kind")
    if kind not in ("toy", "dictionary"):
        raise InputError(f"{run_dir}: the report reads toy and dictionary runs, not {kind!r} runs")
    return kind


def section_of(run_dir: str | Path) -> Section:
    run_dir = Path(run_dir)
    return toy_section(run_dir) if _kind(run_dir) == "toy" else dictionary_section(run_dir)


def build(run_dirs: list[str | Path], out: str | Path) -> Path:
    """OUT/report.html (and OUT/figures/*.png) with one section per run directory."""
    if not run_dirs:
        raise InputError("give at least one run directory")
    out = check_output_path(out)  # '' would write into the working directory
    sections = [section_of(d) for d in run_dirs]
    return write_report(Path(out) / "report.html", "monosemantic: runs", sections,
                        intro=f"Built by `monosemantic report` from {len(sections)} run director"
                              f"{'y' if len(sections) == 1 else 'ies'}.")
