"""`sae train` and `sae score` as library functions: a data file in, a saved dictionary directory out.

The output directory holds the dictionary in its own format (for SAEs SAELens's `cfg.json` +
`sae_weights.safetensors`), plus `config.json` (every parameter, data path, versions) and `result.json`
(`wall_s` = training compute only, `samples_per_s`, final training figures). `score` adds `scores.json`.

`holdout` keeps the last share of the data file's rows out of training (`config.json` records how many);
`score` on the same file then scores those rows, and says which rows it scored.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import monosemantic.recovery as R
from monosemantic.config import SaeTrainConfig
from monosemantic.devices import check_dtype, resolve
from monosemantic.errors import InputError
from monosemantic.data import random_dictionary, split, synth_uniform
from monosemantic.dictionary import ICADictionary, MiniBatchDictionary, PCADictionary, SparseAutoencoder
from monosemantic.experiments.unfolding import amortization_gap

def make_estimator(cfg: SaeTrainConfig, progress: bool = False):
    from monosemantic.dictionary import ICADictionary, MiniBatchDictionary, PCADictionary, SparseAutoencoder
    from monosemantic.dictionary.estimator import DEFAULT_SAMPLES

    classical = {"mbdl": lambda: MiniBatchDictionary(cfg.latents, cfg.alpha, cfg.samples or 300 * 1024,
                                                    cfg.batch or 1024, cfg.seed),
                 "pca": lambda: PCADictionary(cfg.latents, cfg.seed),
                 "ica": lambda: ICADictionary(cfg.latents, cfg.seed)}
    if cfg.arch in classical:
        if (cfg.device != "auto" and resolve(cfg.device).type != "cpu") or cfg.dtype != "float32":
            raise InputError(f"{cfg.arch} is scikit-learn's: it runs on the CPU in float64; use --device cpu or auto")
        return classical[cfg.arch]()
    check_dtype(cfg.dtype, resolve(cfg.device))  # a bad device or dtype fails before the data are read
    return SparseAutoencoder(arch=cfg.arch, n_latents=cfg.latents, k=cfg.k, l1=cfg.l1, l0=cfg.l0,
                             samples=cfg.samples or DEFAULT_SAMPLES, batch=cfg.batch or 256, lr=cfg.lr,
                             warmup=cfg.warmup, resample_every=cfg.resample_every, seed=cfg.seed, progress=progress,
                             checkpoint=cfg.checkpoint, checkpoint_every=cfg.checkpoint_every, device=cfg.device,
                             dtype=cfg.dtype)


def train_dictionary_run(cfg: SaeTrainConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """Fit a dictionary on cfg.data, write OUT (refused before training if OUT exists, unless overwrite) and
    return the result."""
    from monosemantic.data import load_data
    from monosemantic.runs import check_new_dir, environment

    out = check_new_dir(out, overwrite)
    if cfg.checkpoint and Path(cfg.checkpoint).absolute() == out.absolute():
        raise InputError("--checkpoint and --out must be different directories")
    data = load_data(cfg.data, mmap=str(cfg.data).endswith(".npy"))
    held = held_out_rows(len(data), cfg.holdout)
    if held and Path(cfg.data).is_dir():
        raise InputError("--holdout splits a data file's rows; an activation store has a test split of its own "
                         "(capture it with `real capture --split test`)")
    if held:
        data = split(data, held)[0]
    cfg.check_memory(data.X.shape[1])
    est = make_estimator(cfg, progress)
    batch = getattr(est, "batch", 1)
    t = time.perf_counter()
    est.fit(data.X)  # refuses fewer samples than one batch (Batches), and PCA/ICA latents > d (_fit_floor)
    wall = getattr(est, "train_seconds_", None) or time.perf_counter() - t
    seen = est.step_ * batch if hasattr(est, "step_") else len(data.X)  # PCA and ICA fit on every row once
    result = {"wall_s": wall, "samples": seen, "samples_per_s": seen / wall if wall > 0 else None,
              "fvu_train_sample": 1 - est.score(data.X[: min(len(data.X), 10_000)]),
              "n_resampled": getattr(est, "n_resampled_", 0), "holdout_rows": held}
    if getattr(est, "history_", None):  # SAEs: loss, MSE, FVU, L0 and dead latents over training
        result["history"] = est.history_
    config = {"kind": "dictionary", **cfg.model_dump(), "data_resolved": str(Path(cfg.data).resolve()),
              "holdout_rows": held, "train_rows": len(data),
              "device": str(getattr(est, "device_", "cpu")), "environment": environment()}
    est.save(out, overwrite, extra_json={"config.json": config, "result.json": result})
    return result


def held_out_rows(rows: int, holdout: float) -> int:
    """How many of `rows` (the last ones) a holdout share keeps out of training: at least one when the share is
    positive, and never every row."""
    if not holdout:
        return 0
    held = max(1, round(rows * holdout))
    if held >= rows:
        raise InputError(f"--holdout {holdout} of {rows} rows leaves none to train on")
    return held


def _rows_to_score(run_dir: Path, truth: Path, rows: int, n_eval: int | None) -> tuple[int, str]:
    """(how many of the last rows to score, what they are): by default the rows `sae train --holdout` kept out
    when these are its data, else every row."""
    from monosemantic.runs import read_json

    config = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    trained_on = config.get("data_resolved") or config.get("data") if isinstance(config, dict) else None
    counts = [config.get(k, 0) for k in ("train_rows", "holdout_rows")] if isinstance(config, dict) else []
    if not isinstance(config, dict) or not isinstance(trained_on, (str, type(None))) or \
            not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise InputError(f"{run_dir}/config.json is not what `sae train` writes (a JSON object with the data path "
                         f"and row counts)")
    train_rows, held = counts
    # the training file, unchanged in length since (a file rewritten at that path is another file)
    trained_here = bool(trained_on) and Path(trained_on).resolve() == Path(truth).resolve() and \
        (not train_rows or train_rows + held == rows)
    held = held if trained_here else 0
    if n_eval is None:
        n_eval = held or rows
    if not 0 < n_eval <= rows:
        raise InputError(f"--n-eval (the last rows to score, held-out or not) must lie in (0, {rows}], got {n_eval}")
    if not trained_here:
        what = "rows of a file the dictionary was not trained on" if trained_on else \
            "rows of a file (the dictionary's training data are not recorded)"
    elif n_eval <= held:
        what = "held-out rows (kept out of training by --holdout)"
    elif held:
        what = f"rows of the training data: the last {held} held out, the rest trained on"
    else:
        what = "rows of the training data (trained on: not held out)"
    return n_eval, f"the last {n_eval} of {rows} {what}" if n_eval < rows else f"all {rows} {what}"


def score_dictionary_run(run_dir: str | Path, truth: str | Path, n_eval: int | None = None,
                         progress: bool = False, chunk: int = 65_536) -> dict:
    """Scores of a saved dictionary on a data file: its last n_eval rows, by default the rows `sae train --holdout`
    kept out when the file is the dictionary's training data, else every row. Writes RUN_DIR/scores.json; `rows`
    says which rows were scored."""
    import monosemantic.recovery as R
    import scipy.sparse as sp
    from monosemantic.data import load_data
    from monosemantic.dictionary import load
    from monosemantic.progress import Bar
    from monosemantic.runs import write_json

    est = load(run_dir)
    data = load_data(truth)
    n_eval, rows = _rows_to_score(Path(run_dir), Path(truth), len(data), n_eval)
    if n_eval < len(data):
        data = data.rows(len(data) - n_eval, len(data))
    starts = range(0, len(data.X), chunk)
    bar = Bar(len(starts) + 1, "score") if progress else None
    try:
        parts = []  # refuses X (and so F: load_data matches their d) of another d than the dictionary
        for s in starts:
            parts.append(est.transform(data.X[s:s + chunk]))
            if bar:
                bar.advance()
        C = sp.vstack(parts, format="csr")
        out = {"truth": str(truth), "samples": len(data.X), "rows": rows, "sign_free": est.sign_free}
        out.update(R.all_scores(data.X, est.inverse_transform(C), C, data.F, est.components_, data.codes,
                                absolute=est.sign_free))
    finally:
        if bar:
            bar.close()
    write_json(Path(run_dir) / "scores.json", out)
    return out


# ---------------------------------------------------------------- the report's section: every method on known features


def _traj_callback(F, traj):
    def cb(est, step, samples, train_s):
        traj.append((train_s, R.recovered(F, est.components_)))
    return cb


def _sizes(quick: bool) -> tuple[int, int, int, int, int, int]:
    """(features n, d, k, samples, SAE training samples, MBDL batches) of the demo's section-5 data."""
    return (96, 48, 3, 30_000, 120_000, 6) if quick else (512, 128, 5, 110_000, 600_000, 25)


def _demo_data(quick: bool):
    n, d, k, samples, _, _ = _sizes(quick)
    return split(synth_uniform(n, d, k, samples, seed=1), 10_000)  # seed 1: not the benchmark's data


def run_methods(quick: bool, progress: bool = False) -> tuple[dict, dict, dict, dict, dict, dict]:
    """Fit every method on section-5 data; returns (final scores, trajectories, best cosines, amortization gaps,
    training histories, latent densities) by method (the last three for the SAEs only: `amortization_gap` on the
    held-out samples, `history_`, the share of held-out samples on which each latent fires)."""
    n, d, k, samples, sae_samples, mbdl_batches = _sizes(quick)
    tr, ev = _demo_data(quick)
    F = tr.F
    methods = {
        "ours TopK": (SparseAutoencoder("topk", n, k, samples=sae_samples, progress=progress), 100),
        "ours ReLU+L1": (SparseAutoencoder("relu", n, samples=sae_samples, progress=progress), 100),
        "sklearn MBDL": (MiniBatchDictionary(n, alpha=0.1, samples=mbdl_batches * 1024), 5),
        "PCA (floor)": (PCADictionary(d), 0),
        "FastICA (floor)": (ICADictionary(d, max_iter=200), 0),
    }
    scores, trajs, best, gaps, histories, density = {}, {}, {}, {}, {}, {}
    for name, (est, every) in methods.items():
        traj = [(0.0, R.recovered(F, random_dictionary(np.random.default_rng(0), n, d)))] if every else []
        if every:
            est.fit(tr.X, callback=_traj_callback(F, traj), eval_every=every)
        else:
            est.fit(tr.X[:5000 if quick else 10_000])
        C = est.transform(ev.X)
        s = R.all_scores(ev.X, est.inverse_transform(C), C, F, est.components_, ev.codes, absolute=est.sign_free)
        s["train_s"] = est.train_seconds_
        traj.append((est.train_seconds_, s["recovered"]))
        scores[name], trajs[name] = s, traj
        best[name] = R.best_cosines(F, est.components_, absolute=est.sign_free)
        if isinstance(est, SparseAutoencoder):
            gaps[name] = amortization_gap(est, ev.X, F, ev.codes, enc=C)
            histories[name] = est.history_
            density[name] = np.asarray((C != 0).mean(axis=0)).ravel()
    return scores, trajs, best, gaps, histories, density


def frontier(quick: bool, progress: bool = False) -> list[dict]:
    """The L0-FVU frontier on the demo's data: TopK over k and ReLU+L1 over its L1 coefficient, every SAE trained on
    the same (shortened) number of samples and scored on the held-out samples."""
    n, _, k, _, sae_samples, _ = _sizes(quick)
    tr, ev = _demo_data(quick)
    samples = sae_samples // 4
    sweeps = [("TopK", "k", v, SparseAutoencoder("topk", n, v, samples=samples, progress=progress))
              for v in sorted({1, max(1, k // 2), k, 2 * k, 4 * k})]
    sweeps += [("ReLU+L1", "l1", v, SparseAutoencoder("relu", n, l1=v, samples=samples, progress=progress))
               for v in (0.03, 0.1, 0.3, 1.0)]
    points = []
    for method, knob, value, est in sweeps:
        est.fit(tr.X)
        C = est.transform(ev.X)
        points.append({"method": method, knob: value, "l0": R.l0(C), "fvu": R.fvu(ev.X, est.inverse_transform(C)),
                       "recovered": R.recovered(tr.F, est.components_), "train_s": est.train_seconds_})
    return points


def demo(quick: bool, progress: bool) -> dict:
    scores, trajs, best, gaps, histories, density = run_methods(quick, progress)
    return {"scores": scores, "trajectories": trajs, "best": best, "gaps": gaps, "history": histories,
            "latent_density": density, "frontier": frontier(quick, progress), "true_l0": _sizes(quick)[2]}
