"""Learning dynamics (Elhage et al. 2022): do features move between energy levels in jumps, and does the loss
drop suddenly when they do?

One toy model is trained with weight snapshots (`train(snapshot_every=N)`); at every snapshot the feature
dimensionalities D_i and the loss on a fixed evaluation batch are measured. A jump is a stretch of training in
which a feature's D_i moves by more than JUMP within JUMP_STEPS steps; a sudden loss drop is an
interval whose loss decrease exceeds SUDDEN times the median decrease of the intervals around it. A jump
coincides with a drop when a drop lies within one interval of it; the chance of that for a jump placed at
random is reported beside it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import monosemantic.measures as measures
from monosemantic.errors import InputError
from monosemantic.runs import write_run
from monosemantic.toy.models import loss_per_instance, make_model
from monosemantic.toy.sampler import FeatureSampler, importance, probabilities
from monosemantic.toy.train import kept_snapshots, kept_tensors, train_toy

JUMP = 0.1  # a D_i change larger than this within JUMP_STEPS training steps is (part of) a jump
JUMP_STEPS = 100  # short against a run of thousands of steps, long against a snapshot period
SUDDEN = 3.0  # a loss drop larger than this times the median drop around it is sudden
WINDOW = 5  # snapshot intervals on each side that give that median
EVAL_BATCH = 8192
SNAPSHOT_CHUNK = 16


def find_jumps(D: np.ndarray, steps: list[int], jump: float = JUMP, within: int = JUMP_STEPS) -> list[dict]:
    """Jumps of every feature in D: [snapshots, n] taken at `steps` (evenly spaced): runs of snapshots t where
    |D_i(t + k) - D_i(t)| > jump, k snapshots spanning `within` training steps (at least one), each with the
    snapshots and steps it spans and D_i before and after (the named level where within 0.01, else None)."""
    period = steps[1] - steps[0] if len(steps) > 1 else 1
    k = max(1, round(within / period))
    out = []
    if D.shape[0] <= k:
        return out
    big = np.abs(D[k:] - D[:-k]) > jump  # [snapshots - k, n]
    for i in range(D.shape[1]):
        t = 0
        while t < big.shape[0]:
            if not big[t, i]:
                t += 1
                continue
            end = t
            while end + 1 < big.shape[0] and big[end + 1, i]:
                end += 1
            before, after = float(D[t, i]), float(D[end + k, i])
            out.append({"feature": i, "from_snapshot": t, "to_snapshot": end + k, "steps": [steps[t], steps[end + k]],
                        "D_before": before, "D_after": after, "levels": [_level(before), _level(after)]})
            t = end + 1
    return sorted(out, key=lambda j: (j["from_snapshot"], j["feature"]))


def _level(d: float) -> str | None:
    level = measures.energy_level(d)
    return None if level is None else measures.LEVEL_NAMES[level]


def sudden_drops(loss: np.ndarray, sudden: float = SUDDEN, window: int = WINDOW) -> list[int]:
    """Intervals t (snapshot t to t+1) whose loss decrease exceeds `sudden` times the median decrease of the
    `window` intervals on each side (the interval itself excluded)."""
    drop = loss[:-1] - loss[1:]
    out = []
    for t in range(len(drop)):
        around = np.concatenate([drop[max(0, t - window):t], drop[t + 1:t + 1 + window]])
        typical = np.median(np.abs(around)) if around.size else 0.0
        if drop[t] > 0 and drop[t] > sudden * typical:
            out.append(t)
    return out


def analyse(steps: list[int], W: torch.Tensor, b: torch.Tensor, p: torch.Tensor, weight: torch.Tensor,
            seed: int = 0) -> dict:
    """D_i and the evaluation loss at each snapshot (W: [snapshots, m, n], b: [snapshots, n]), the jumps, the
    sudden drops and how many jumps coincide with one."""
    T, m, n = W.shape
    x = FeatureSampler(p.expand(1, n), seed=seed + 10_000_019).sample_into(torch.empty(1, EVAL_BATCH, n))
    loss = np.empty(T)
    for s in range(0, T, SNAPSHOT_CHUNK):  # a few snapshots at a time: [chunk, batch, n] stays small
        e = min(T, s + SNAPSHOT_CHUNK)
        model = make_model("relu-output", e - s, n, m, [0] * (e - s))
        model.load({"W": W[s:e], "b": b[s:e]})
        loss[s:e] = loss_per_instance(model, x.expand(e - s, -1, -1), weight.reshape(1, 1, n).expand(e - s, 1, n))
    D = measures.feature_dimensionality(W).numpy()
    jumps = find_jumps(D, steps)
    drops = sudden_drops(loss)
    near = set()  # intervals within one of a sudden drop
    for t in drops:
        near.update({t - 1, t, t + 1})
    for j in jumps:
        j["with_sudden_drop"] = any(t in near for t in range(j["from_snapshot"], j["to_snapshot"]))
    intervals = T - 1
    return {"steps": steps, "D": D.tolist(), "loss": loss.tolist(), "jumps": jumps,
            "sudden_drops": [steps[t + 1] for t in drops],
            "jumps_detected": len(jumps), "jumps_with_sudden_drop": sum(j["with_sudden_drop"] for j in jumps),
            "chance_of_coincidence": len([t for t in near if 0 <= t < intervals]) / intervals if intervals else None,
            "jump_threshold": JUMP, "jump_steps": JUMP_STEPS, "sudden_factor": SUDDEN}


def dynamics(n: int = 40, m: int = 8, density: float = 0.25, steps: int = 5000, snapshot_every: int = 25,
             seeds: int = 1, seed: int = 0, lr: float = 1e-3, out: str | Path | None = None,
             progress: bool = False) -> dict:
    """Train one ReLU-output model of uniform importance with snapshots (best of `seeds`) and analyse its
    dynamics; with `out`, write the run directory (snapshots.safetensors: W: [snapshots, 1, m, n],
    b: [snapshots, 1, n], step: [snapshots])."""
    if snapshot_every < 1:  # 0 would train without snapshots, and the analysis reads them
        raise InputError(f"snapshot_every must be at least 1, got {snapshot_every}")
    p = probabilities(1 - density, n)
    weight = importance(n, 1.0)
    run = train_toy("relu-output", n, m, p, weight, steps, seeds=seeds, seed=seed, lr=lr, progress=progress,
                    snapshot_every=snapshot_every)
    snaps = kept_snapshots(run)
    res = analyse(snaps["step"].tolist(), snaps["W"][:, 0], snaps["b"][:, 0], p, weight, seed)
    res.update({"n": n, "m": m, "density": density, "snapshot_every": snapshot_every, "final_loss": run.loss[0],
                "wall_s": run.log.wall_s})
    if out is not None:
        res["run_dir"] = str(out)
        write_run(out, {"kind": "toy-dynamics", "n": n, "m": m, "density": density, "steps": steps,
                        "snapshot_every": snapshot_every, "seeds": seeds, "seed": seed, "lr": lr},
                  res, {"model": kept_tensors(run), "snapshots": snaps}, overwrite=False)
    return res


def demo(quick: bool, progress: bool) -> dict:
    """The report's learning-dynamics run (n=40, m=8, 1-S = 0.25, 5,000 steps, a snapshot every 25)."""
    return dynamics(steps=1000 if quick else 5000, snapshot_every=10 if quick else 25, progress=progress)
