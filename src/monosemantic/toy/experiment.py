"""Toy runs as run directories: a config in, `model.safetensors` + `result.json` + `config.json` out."""
from __future__ import annotations

from pathlib import Path

import torch

from monosemantic import InputError
from monosemantic import measures
from monosemantic.config import ToyTrainConfig
from monosemantic.features import importance, probabilities
from monosemantic.runs import check_new_dir, read_run, write_json, write_run
from monosemantic.toy.train import ToyRun, kept_tensors, train_toy


def run_config(cfg: ToyTrainConfig, progress: bool = False) -> ToyRun:
    weight = torch.tensor(cfg.importance) if cfg.importance is not None else importance(cfg.n, cfg.importance_decay)
    return train_toy(
        cfg.model, cfg.n, cfg.m, probabilities(cfg.sparsity, cfg.n), weight, cfg.steps, cfg.batch, cfg.seeds,
        cfg.seed, cfg.lr, cfg.weight_decay, cfg.schedule, cfg.warmup, cfg.eval_batch, cfg.correlated_sets,
        cfg.anticorrelated_sets, cfg.set_size, progress=progress, l1=cfg.l1,
    )


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
        "train_loss_log": {"steps": log.steps, "loss": [[row[i] for i in run.kept] for row in log.loss]},
    }


def train_to_dir(cfg: ToyTrainConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> Path:
    """Train and write a run directory. A run that diverged is still written (last good weights),
    then reported as an InputError naming the step."""
    check_new_dir(out, overwrite)  # fail before training, not after
    run = run_config(cfg, progress)
    result = result_of(run, cfg)
    path = write_run(out, {"kind": "toy", **cfg.model_dump()}, result, {"model": kept_tensors(run)}, overwrite)
    if run.log.diverged_at is not None:
        raise InputError(f"training stopped: non-finite loss or gradient at step {run.log.diverged_at}; "
                         f"the last good weights are in {path}")
    return path


def measure_dir(run_dir: str | Path) -> list[dict]:
    """Measures of every kept instance of a toy run directory; writes `measures.json` beside it."""
    config, _, tensors = read_run(run_dir)
    if "W" not in tensors or tensors["W"].ndim != 3:
        raise InputError(f"{run_dir}/model.safetensors has no W: [instances, m, n]")
    W = tensors["W"].float()
    if not torch.isfinite(W).all():
        raise InputError(f"{run_dir}/model.safetensors: W has NaN or Inf")
    # an L1 penalty on h privileges the hidden basis of relu-output too
    privileged = config.get("model") in ("relu-hidden", "abs") or config.get("l1", 0) > 0
    rows = measures.summarize(W, privileged)
    for row, s in zip(rows, config.get("sparsity", [None] * len(rows))):
        row["sparsity"] = s
    write_json(Path(run_dir) / "measures.json", rows)
    return rows
