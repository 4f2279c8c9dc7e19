"""Train many toy models at once: AdamW, a learning-rate schedule, best-of-N seeds, a loss log.

The loop is nanoGPT-flat: sample a batch into a reused buffer, compute the gradients (by hand for
the tied models), take an AdamW step. Instances are independent models that happen to share one
tensor, so "best of N seeds" is just N instances per configuration and a choice at the end.
Everything lives on the model's device (`train_toy(device=...)`); only the uniform draws go up and
the logged losses come down.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from monosemantic.devices import resolve, synchronize
from monosemantic.data import check_seed
from monosemantic.errors import InputError
from monosemantic.toy.sampler import FeatureSampler
from monosemantic.optim import SCHEDULES, AdamW, lr_at
from monosemantic.progress import Bar
from monosemantic.runs import check_memory
from monosemantic.toy.models import batch_buffer, check_l1, hidden_l1_per_instance, loss_per_instance, make_model

@dataclass
class TrainLog:
    steps: list[int] = field(default_factory=list)
    loss: list[list[float]] = field(default_factory=list)  # [log points][instances], on the training batch
    wall_s: float = 0.0  # compute only: sampling, gradients and updates
    steps_done: int = 0
    diverged_at: int | None = None  # step whose loss or gradient was not finite (weights kept from before it)
    snapshot_steps: list[int] = field(default_factory=list)  # step 0 (the start), then every snapshot_every steps
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)  # model.tensors() at those steps


def train(
    model,
    sampler: FeatureSampler,
    weight: torch.Tensor,
    steps: int,
    batch: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    schedule: str = "constant",
    warmup: int = 0,
    log_every: int = 100,
    progress: bool = False,
    l1: float | torch.Tensor = 0.0,
    snapshot_every: int = 0,
    hybrid=None,
) -> TrainLog:
    """Train `model` in place, on its device. weight: [instances, n] importances. Returns the loss log.

    snapshot_every: with N > 0, copy the weights (`model.tensors()`) at the start and every N steps into the log.

    l1: a penalty l1 * mean_b ||h||_1 on the hidden activations, one number or [instances]. The
    logged loss is the reconstruction loss alone.

    A non-finite gradient stops training before the update, so the model keeps the last good
    weights, and `TrainLog.diverged_at` names the step.
    """
    if steps < 1 or batch < 1:
        raise InputError(f"steps and batch must be positive, got steps={steps}, batch={batch}")
    if not lr > 0 or weight_decay < 0:
        raise InputError(f"need lr > 0 and weight_decay >= 0, got lr={lr}, weight_decay={weight_decay}")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if not 0 <= snapshot_every <= steps:
        raise InputError(f"the snapshot period must lie in [1, steps={steps}] (0: none), got {snapshot_every}")
    x = batch_buffer(model, batch)
    weight = weight.reshape(model.instances, 1, model.n).to(x)
    l1 = check_l1(model.kind, l1, model.instances)
    l1 = None if l1 is None else l1.to(x)
    step_grad = model.loss_grad if hybrid is None else hybrid.loss_grad
    extra = [] if hybrid is None else hybrid.params()
    opt = AdamW(model.params() + extra, lr=lr, weight_decay=weight_decay)
    log = TrainLog()
    bar = Bar(steps, f"training {model.instances} {model.kind} models") if progress else None
    if snapshot_every:
        log.snapshot_steps.append(0)
        log.snapshots.append({k: v.clone() for k, v in model.tensors().items()})
    start = time.perf_counter()
    for step in range(steps):
        sampler.sample_into(x)
        step_grad(x, weight, l1)
        grads = model.grads() + ([] if hybrid is None else hybrid.grads())
        if not all(math.isfinite(float(g.sum())) for g in grads):  # NaN and inf both survive a sum
            log.diverged_at = step
            break
        opt.step(grads, lr_at(step, steps, lr, schedule, warmup))
        log.steps_done = step + 1
        if snapshot_every and (step + 1) % snapshot_every == 0:
            log.snapshot_steps.append(step + 1)
            log.snapshots.append({k: v.clone() for k, v in model.tensors().items()})
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log.steps.append(step + 1)
            log.loss.append(loss_per_instance(model, x, weight).tolist())
            if bar:
                bar.update(step + 1, f"best loss {min(log.loss[-1]):.4g}")
    synchronize(x.device)
    log.wall_s = time.perf_counter() - start
    if bar:
        bar.close()
    return log


def toy_bytes(n: int, m: int, instances: int, batch: int, eval_batch: int, abs_model: bool = False) -> int:
    """Peak memory of training toy models side by side, estimated (float32): a step's batch with its 4
    intermediates, the eval batch (drawn and run at once) with its 3, their shared uniforms, and the weights
    with gradient and AdamW moments."""
    width = max(n, m)
    return 4 * (instances * (5 * batch * width + 4 * eval_batch * width + 8 * (m + 1) * n * (2 if abs_model else 1))
                + 2 * (batch + eval_batch) * n)


def init_seeds(instances: int, seed: int) -> list[int]:
    """Instance i's initialisation seed in a batch trained with base `seed` (modulo 2^63: torch's generators take
    64-bit seeds; below 9.2e12 the modulo changes nothing)."""
    return [(seed * 1_000_003 + i) % 2**63 for i in range(instances)]


@dataclass
class ToyRun:
    """A trained batch of toy models, best seed kept per configuration."""

    model: object
    kept: list[int]  # instance index kept for each configuration
    loss: list[float]  # evaluation loss of each kept instance
    all_loss: list[list[float]]  # [configurations][seeds] evaluation losses
    log: TrainLog
    eval_s: float
    hidden_l1: list[float] | None = None  # mean_b ||h||_1 of each kept instance on the eval batch (with a penalty)


def train_toy(
    kind: str,
    n: int,
    m: int,
    p: torch.Tensor,
    weight: torch.Tensor,
    steps: int,
    batch: int = 1024,
    seeds: int = 1,
    seed: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    schedule: str = "constant",
    warmup: int = 0,
    eval_batch: int = 16384,
    correlated_sets: int = 0,
    anticorrelated_sets: int = 0,
    set_size: int = 2,
    progress: bool = False,
    init: torch.Tensor | None = None,
    l1: float | torch.Tensor = 0.0,
    model=None,
    device: str | torch.device = "cpu",
    snapshot_every: int = 0,
    hybrid=None,
) -> ToyRun:
    """Train `seeds` instances per configuration and keep, per configuration, the lowest eval loss.

    p: [configs, n] feature probabilities; weight: [configs, n] or [n] importances. Instance
    c * seeds + s is configuration c with seed s; every instance starts from its own init seed,
    and all share the data stream (instances never interact). The evaluation batch is drawn
    from its own seed, the same for every run with this `seed`. `init: [configs * seeds, m, n]`
    gives the starting W of every instance (default: Xavier from per-instance seeds).

    l1: the L1 penalty on hidden activations, one number or [configs] (a lambda sweep as configurations).
    With a penalty the best seed is the one with the lowest trained objective (reconstruction + penalty);
    `loss` stays the reconstruction loss.

    model: a model to train in place of `make_model(kind, ...)` (configs * seeds instances, e.g. a
    Mixture-of-Experts model); `kind` must then be its kind, and it trains on its own device.
    device: cpu, cuda, cuda:N or auto (CUDA when available). The data stream and the initial weights are
    drawn on the CPU, so a seed gives the same start and the same batches on every device.
    hybrid: a training change on `model` (`toy.hybrids.Hybrid`), which must then be given.
    """
    if seeds < 1:
        raise InputError(f"seeds must be positive, got {seeds}")
    check_seed(seed)
    configs = p.shape[0]
    if n >= 1 and m >= 1:  # before allocating (the models refuse sizes below 1)
        check_memory(toy_bytes(n, m, configs * seeds, batch, eval_batch, kind == "abs"),
                     f"training {configs * seeds} toy models (n={n}, m={m}, batch={batch}, eval_batch={eval_batch})",
                     "lower n, m, the seeds or the number of sparsities")
    weight = torch.as_tensor(weight, dtype=torch.float32).expand(configs, n)
    if not (torch.isfinite(weight).all() and (weight >= 0).all()):
        raise InputError("importances must be finite and non-negative")
    p_all = p.repeat_interleave(seeds, dim=0)
    w_all = weight.repeat_interleave(seeds, dim=0)
    lam = check_l1(kind, l1, configs)
    l1_all = 0.0 if lam is None else lam.repeat_interleave(seeds)
    if model is None:
        model = make_model(kind, configs * seeds, n, m, init_seeds(configs * seeds, seed), init, resolve(device))
    elif model.kind != kind or model.instances != configs * seeds or model.n != n:
        raise InputError(f"the given model must be {configs * seeds} instances of {kind} with n={n}")
    if hybrid is not None and hybrid.model is not model:
        raise InputError("a hybrid change must be built on the model it trains (pass it as model)")
    sampler_args = dict(signed=kind == "abs", correlated_sets=correlated_sets,
                        anticorrelated_sets=anticorrelated_sets, set_size=set_size)
    sampler = FeatureSampler(p_all, seed=seed, **sampler_args)
    log = train(model, sampler, w_all, steps, batch, lr, weight_decay, schedule, warmup, progress=progress, l1=l1_all,
                snapshot_every=snapshot_every, hybrid=hybrid)
    t = time.perf_counter()
    x_eval = FeatureSampler(p_all, seed=seed + 10_000_019, **sampler_args).sample_into(
        next(model.parameters()).new_empty(configs * seeds, eval_batch, n))
    eval_loss = loss_per_instance(model, x_eval, w_all.reshape(-1, 1, n).to(x_eval)).reshape(configs, seeds).cpu()
    objective, act = eval_loss, None
    if lam is not None:
        act = hidden_l1_per_instance(model, x_eval).reshape(configs, seeds).cpu()
        objective = eval_loss + lam.double()[:, None] * act
    eval_s = time.perf_counter() - t
    best = objective.argmin(dim=1)
    kept = [c * seeds + int(best[c]) for c in range(configs)]
    return ToyRun(model, kept, [float(eval_loss[c, best[c]]) for c in range(configs)], eval_loss.tolist(), log,
                  eval_s, None if act is None else [float(act[c, best[c]]) for c in range(configs)])


def kept_tensors(run: ToyRun) -> dict[str, torch.Tensor]:
    """The kept instances' weights on the CPU, instance order = configuration order."""
    idx = torch.tensor(run.kept)
    return {k: v.cpu()[idx].contiguous() for k, v in run.model.tensors().items()}


def kept_snapshots(run: ToyRun) -> dict[str, torch.Tensor]:
    """The kept instances' weight snapshots with a step axis first (W: [snapshots, configurations, m, n]) and
    `step: [snapshots]`; empty without snapshots."""
    if not run.log.snapshots:
        return {}
    idx = torch.tensor(run.kept)
    out = {k: torch.stack([snap[k][idx] for snap in run.log.snapshots]).contiguous() for k in run.log.snapshots[0]}
    return {**out, "step": torch.tensor(run.log.snapshot_steps)}
