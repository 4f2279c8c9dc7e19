"""`sae train` and `sae score` as library functions: a data file in, a saved dictionary directory out.

The output directory holds the dictionary in its own format (for SAEs SAELens's `cfg.json` +
`sae_weights.safetensors`), plus `config.json` (every parameter, data path, versions) and `result.json`
(`wall_s` = training compute only, `samples_per_s`, final training figures). `score` adds `scores.json`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from monosemantic.config import Strict

Arch = Literal["relu", "topk", "batchtopk", "jumprelu", "mbdl", "pca", "ica"]


class SaeTrainConfig(Strict):
    data: str
    arch: Arch = "topk"
    latents: PositiveInt = 512
    k: PositiveInt = 5
    l1: NonNegativeFloat | None = None
    l0: NonNegativeFloat = 0.01
    alpha: PositiveFloat = 0.1  # mbdl
    samples: PositiveInt | None = None
    batch: PositiveInt | None = None
    lr: PositiveFloat | None = None
    seed: NonNegativeInt = 0
    checkpoint: str | None = None
    checkpoint_every: PositiveInt = 1000
    resample_every: NonNegativeInt = 50
    warmup: float = Field(default=0.02, ge=0, lt=1)

    @model_validator(mode="after")
    def _k(self) -> SaeTrainConfig:
        if self.arch in ("topk", "batchtopk") and self.k >= self.latents:
            raise ValueError(f"k ({self.k}) must be smaller than latents ({self.latents})")
        return self


def make_estimator(cfg: SaeTrainConfig, progress: bool = False):
    from monosemantic.dictionary import ICADictionary, MiniBatchDictionary, PCADictionary, SparseAutoencoder
    from monosemantic.dictionary.estimator import DEFAULT_SAMPLES

    classical = {"mbdl": lambda: MiniBatchDictionary(cfg.latents, cfg.alpha, cfg.samples or 300 * 1024,
                                                    cfg.batch or 1024, cfg.seed),
                 "pca": lambda: PCADictionary(cfg.latents, cfg.seed),
                 "ica": lambda: ICADictionary(cfg.latents, cfg.seed)}
    if cfg.arch in classical:
        return classical[cfg.arch]()
    return SparseAutoencoder(arch=cfg.arch, n_latents=cfg.latents, k=cfg.k, l1=cfg.l1, l0=cfg.l0,
                             samples=cfg.samples or DEFAULT_SAMPLES, batch=cfg.batch or 256, lr=cfg.lr,
                             warmup=cfg.warmup, resample_every=cfg.resample_every, seed=cfg.seed, progress=progress,
                             checkpoint=cfg.checkpoint, checkpoint_every=cfg.checkpoint_every)


def train_to_dir(cfg: SaeTrainConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> Path:
    """Fit a dictionary on cfg.data and write OUT (refused before training if OUT exists, unless overwrite)."""
    from monosemantic.data import load_data
    from monosemantic.runs import check_new_dir, environment

    out = check_new_dir(out, overwrite)
    data = load_data(cfg.data, mmap=str(cfg.data).endswith(".npy"))
    est = make_estimator(cfg, progress)
    batch = getattr(est, "batch", 1)
    t = time.perf_counter()
    est.fit(data.X)  # refuses fewer samples than one batch (Batches), and PCA/ICA latents > d (_fit_floor)
    wall = getattr(est, "train_seconds_", None) or time.perf_counter() - t
    seen = getattr(est, "step_", 1) * batch if cfg.arch not in ("pca", "ica") else len(data.X)
    result = {"wall_s": wall, "samples": seen, "samples_per_s": seen / wall if wall > 0 else None,
              "fvu_train_sample": 1 - est.score(data.X[: min(len(data.X), 10_000)]),
              "n_resampled": getattr(est, "n_resampled_", 0)}
    config = {"kind": "dictionary", **cfg.model_dump(), "environment": environment()}
    return est.save(out, overwrite, extra_json={"config.json": config, "result.json": result})


def score_dir(run_dir: str | Path, truth: str | Path, n_eval: int | None = None) -> dict:
    """Scores of a saved dictionary on a data file (its last n_eval rows, or all); writes RUN_DIR/scores.json."""
    import monosemantic.recovery as R
    from monosemantic.data import load_data, split
    from monosemantic.dictionary import load
    from monosemantic.runs import write_json

    est = load(run_dir)
    data = load_data(truth)
    if n_eval:
        _, data = split(data, n_eval)
    C = est.transform(data.X)  # refuses X (and so F: load_data matches their d) of another d than the dictionary
    out = {"truth": str(truth), "samples": len(data.X), "sign_free": est.sign_free}
    out.update(R.all_scores(data.X, est.inverse_transform(C), C, data.F, est.components_, data.codes,
                            absolute=est.sign_free))
    write_json(Path(run_dir) / "scores.json", out)
    return out
