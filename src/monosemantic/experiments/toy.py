"""Toy runs: a config in, a run directory out (`model.safetensors`, `result.json`, `config.json`), and the
paper's toy-model figures (n=5, m=2 and n=20, m=5), composed from the trainer and the measures.

The figures train the ReLU-output model with best-of-N seeds (the paper's layouts are the lowest loss,
but not what every start reaches) and the linear model beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from monosemantic.errors import InputError
import monosemantic.measures as measures
from monosemantic.config import ToyTrainConfig, validate
from monosemantic.devices import resolve
from monosemantic.toy.sampler import importance, probabilities
from monosemantic.data import check_toy_run, read_toy_run
from monosemantic.runs import check_new_dir, read_run, write_json, write_run
from monosemantic.toy.train import ToyRun, kept_snapshots, kept_tensors, train_toy


def run_config(cfg: ToyTrainConfig, progress: bool = False) -> ToyRun:
    weight = torch.tensor(cfg.importance) if cfg.importance is not None else importance(cfg.n, cfg.importance_decay)
    return train_toy(
        cfg.model, cfg.n, cfg.m, probabilities(cfg.sparsity, cfg.n), weight, cfg.steps, cfg.batch, cfg.seeds,
        cfg.seed, cfg.lr, cfg.weight_decay, cfg.schedule, cfg.warmup, cfg.eval_batch, cfg.correlated_sets,
        cfg.anticorrelated_sets, cfg.set_size, progress=progress, l1=cfg.l1, device=cfg.device,
        snapshot_every=cfg.snapshot_every or 0,
    )


def loss_log(run: ToyRun) -> dict:
    """The training loss of the kept instances: steps [points], loss [points][configurations]."""
    return {"steps": run.log.steps, "loss": [[row[i] for i in run.kept] for row in run.log.loss]}


def result_of(run: ToyRun, cfg: ToyTrainConfig) -> dict:
    """result.json: final eval loss per kept instance, timings, the training-loss log."""
    log = run.log
    kept = len(run.kept)
    return {
        "loss": run.loss,
        "loss_all_seeds": run.all_loss,
        "kept_seed": [i % cfg.seeds for i in run.kept],
        "wall_s": log.wall_s,
        "model_steps_per_s": kept * log.steps_done / log.wall_s if log.wall_s > 0 else None,
        "instances_trained": run.model.instances,
        "steps_done": log.steps_done,
        "diverged_at_step": log.diverged_at,
        "eval_s": run.eval_s,
        "hidden_l1": run.hidden_l1,  # mean_b ||h||_1 of each kept instance (with an L1 penalty), else null
        "train_loss_log": loss_log(run),
    }


def train_toy_run(cfg: ToyTrainConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """Train, write a run directory and return its result. A run that diverged is still written (last good weights),
    then reported as an InputError naming the step."""
    check_new_dir(out, overwrite)  # fail before training, not after
    cfg = cfg.model_copy(update={"device": str(resolve(cfg.device))})  # config.json names the device used
    run = run_config(cfg, progress)
    result = result_of(run, cfg)
    tensors = {"model": kept_tensors(run)}
    if cfg.snapshot_every:  # W: [snapshots, instances, m, n], b: [snapshots, instances, n], step: [snapshots]
        tensors["snapshots"] = kept_snapshots(run)
    path = write_run(out, {"kind": "toy", **cfg.model_dump()}, result, tensors, overwrite)
    if run.log.diverged_at is not None:
        raise InputError(f"training stopped: non-finite loss or gradient at step {run.log.diverged_at}; "
                         f"the last good weights are in {path}")
    return result


def measure_toy_run(run_dir: str | Path) -> list[dict]:
    """Measures of every kept instance of a toy run directory; writes `measures.json` beside it."""
    config, W = read_toy_run(run_dir)
    # an L1 penalty on h privileges the hidden basis of relu-output too
    privileged = config.get("model") in ("relu-hidden", "abs") or config.get("l1", 0) > 0
    rows = measures.summarize(W, privileged)
    for row, s in zip(rows, config.get("sparsity", [None] * len(rows))):
        row["sparsity"] = s
    write_json(Path(run_dir) / "measures.json", rows)
    return rows


N5M2_SPARSITY = [0.0, 0.8, 0.9]
N20M5_DENSITY = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]


def _both_models(n, m, sparsity, decay, steps, seeds, seed, progress, batch=1024):
    out = {}
    for kind, k in (("relu-output", seeds), ("linear", 1)):
        run = train_toy(kind, n, m, probabilities(sparsity, n), importance(n, decay), steps, batch, k, seed,
                        progress=progress)
        kept = kept_tensors(run)
        W = kept["W"]
        out[kind] = {"W": W, "b": kept["b"], "loss": run.loss, "wall_s": run.log.wall_s,
                     "train_loss_log": loss_log(run),
                     "represented": measures.represented(W).sum(1).tolist(),
                     "geometry": [measures.geometry(w)["label"] for w in W]}
    return out


def n5m2(steps: int = 10_000, seeds: int = 20, seed: int = 0, progress: bool = False) -> dict:
    """n=5, m=2, I_i = 0.9^i at S = 0, 0.8, 0.9: 2 orthogonal features, two antipodal pairs, a pentagon."""
    return {"sparsity": N5M2_SPARSITY, **_both_models(5, 2, N5M2_SPARSITY, 0.9, steps, seeds, seed, progress)}


def n20m5(steps: int = 10_000, seeds: int = 3, seed: int = 0, progress: bool = False) -> dict:
    """n=20, m=5, I_i = 0.7^i at 1-S = 1 ... 0.001: the linear model keeps 5 features, ReLU more as S grows."""
    sparsity = [1 - d for d in N20M5_DENSITY]
    return {"density": N20M5_DENSITY, **_both_models(20, 5, sparsity, 0.7, steps, seeds, seed, progress)}


def demo(quick: bool, progress: bool) -> dict:
    """The report's toy-model results."""
    steps, seeds = (2000, 4) if quick else (10_000, 20)
    return {"steps": steps, "seeds": seeds, "n5m2": n5m2(steps, seeds, progress=progress),
            "n20m5": n20m5(steps, 1 if quick else 3, progress=progress)}


@dataclass
class ToyResult:
    """A trained batch of toy models, one per sparsity of its config (the best seed of each).

    W: [configs, m, n] (column i is feature i's direction in the hidden space), b: [configs, n]; `tensors` holds
    every weight of the model (hidden-layer models add theirs). `result` is what `toy train` writes as
    result.json: eval `loss` per configuration, timings and `train_loss_log` (steps, loss [log points][configs]).
    """

    config: ToyTrainConfig
    tensors: dict[str, torch.Tensor]
    result: dict

    @property
    def W(self) -> torch.Tensor:
        return self.tensors["W"]

    @property
    def b(self) -> torch.Tensor:
        return self.tensors["b"]

    @property
    def loss(self) -> list[float]:
        return self.result["loss"]

    def measures(self) -> list[dict]:
        """One row of measures per configuration (norms, superposition, D*, geometry...), as `toy measure` prints."""
        privileged = self.config.model in ("relu-hidden", "abs") or self.config.l1 > 0
        rows = measures.summarize(self.W.float(), privileged)
        for row, s in zip(rows, self.config.sparsity):
            row["sparsity"] = s
        return rows

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """A run directory, as `monosemantic toy train --out` writes it (readable by `load_run` and the CLI)."""
        return write_run(out, {"kind": "toy", **self.config.model_dump()}, self.result, {"model": self.tensors},
                         overwrite)


def train(config: ToyTrainConfig | None = None, progress: bool = False, **fields) -> ToyResult:
    """Train the toy models a config describes, in memory: `train(ToyTrainConfig(n=20, m=5, sparsity=[0.9]))`
    or `train(n=20, m=5, sparsity=[0.9])` (fields override the config's). Sparsity S: feature i is zero with
    probability S, else U[0, 1]."""
    data = {**(config.model_dump() if config is not None else {}), **fields}
    cfg = validate(ToyTrainConfig, data)
    run = run_config(cfg, progress)
    if run.log.diverged_at is not None:
        raise InputError(f"training stopped: non-finite loss or gradient at step {run.log.diverged_at}")
    return ToyResult(cfg, kept_tensors(run), result_of(run, cfg))


def load_run(run_dir: str | Path) -> ToyResult:
    """A toy run directory (written by `toy train --out` or `ToyResult.save`) back as a ToyResult."""
    config, result, tensors = read_run(run_dir)
    if not isinstance(config, dict) or config.get("kind") != "toy" or "W" not in tensors:
        kind = config.get("kind") if isinstance(config, dict) else None
        raise InputError(f"{run_dir} is not a toy run directory (config.json kind {kind!r})")
    check_toy_run(run_dir, config, tensors)
    cfg = validate(ToyTrainConfig, {k: v for k, v in config.items() if k in ToyTrainConfig.model_fields})
    return ToyResult(cfg, tensors, result)
