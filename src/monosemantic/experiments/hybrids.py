"""Road 3: hybrids. Change training a little (`toy.hybrids`: a small L1, a coherence penalty, activation noise, a
joint TopK dictionary) and score the trade: the model's loss against how many of its n features road 2 then
recovers from its activations (`experiments.road2.recoverability`).

Every point starts from the same initial W (one init seed, shared by all strengths), sees the same data stream and
the same number of steps, and is scored on the same held-out batch with the same dictionary budget. The two ends of
the front are road 2 alone (plain training, then a dictionary) and road 1 (`experiments.road1.l1_sweep` at a
lambda strong enough to remove superposition, run exactly as that experiment runs it).

Each (method, strength, seed) is a resumable point (`sweeps.Points`, on local processes or Ray). A job trains one
method's strengths for one seed as one batched model, then fits road 2's dictionary on every point; seed i uses
seed + i for the initial W, the data stream and the dictionary. With several seeds a front point is the mean over
them, its seeds listed beside it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from statistics import mean

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from monosemantic.config import Seed, Strict, toy_bytes
from monosemantic.devices import DEFAULT as DEFAULT_DEVICE, resolve
from monosemantic.experiments.road1 import l1_sweep
from monosemantic.experiments.road2 import CODES_EVAL, EVAL, distinct, recoverability
from monosemantic.experiments.sweeps import Points, key_of
from monosemantic.runs import check_memory
from monosemantic.toy.hybrids import CHANGES, Hybrid, max_cosine
from monosemantic.toy.models import loss_per_instance, make_model
from monosemantic.toy.sampler import FeatureSampler, probabilities
from monosemantic.toy.train import init_seeds, kept_tensors, train_toy

KIND = "relu-output"  # h = W x: the activations road 2 reads are the model's own W x
EVAL_SEED = 777_001


def default_strengths() -> dict[str, list[float]]:
    return {"l1": [0.003, 0.01, 0.03], "coherence": [1.0, 10.0, 100.0], "noise": [0.03, 0.1, 0.3],
            "joint": [0.1, 1.0, 10.0]}


class Road3Config(Strict):
    """`road3`: hybrid changes, each swept over its strength, and the two roads' ends."""

    n: PositiveInt = 20
    m: PositiveInt = 5
    sparsity: float = Field(default=0.9, ge=0, lt=1)
    strengths: dict[str, list[NonNegativeFloat]] = Field(default_factory=default_strengths)
    road1: list[PositiveFloat] = Field(default=[0.1, 0.3, 0.5, 0.7, 1.0], min_length=1)  # L1 lambdas, road 1's end
    joint_latents: PositiveInt | None = None  # None: n
    joint_k: PositiveInt = 3
    steps: PositiveInt = 3000
    batch: PositiveInt = 1024
    arch: str = "topk"  # road 2's dictionary on every point
    ratio: PositiveFloat = 2.0  # its size / n
    samples: PositiveInt = 40_000  # its training activations
    seed: Seed = 0
    seeds: PositiveInt = 1  # seeds seed, seed + 1, ... per point
    device: str = DEFAULT_DEVICE

    @field_validator("strengths")
    @classmethod
    def _changes(cls, v: dict) -> dict:
        for name, strengths in v.items():
            if name not in CHANGES:
                raise ValueError(f"unknown change {name!r}; choose from {', '.join(CHANGES)}")
            distinct(strengths, f"{name} strengths")
        return v

    @field_validator("road1")
    @classmethod
    def _lambdas(cls, v: list[float]) -> list[float]:
        return distinct(v, "road1 lambdas")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int, info) -> int:
        if info.data.get("seed", 0) + v > 2**63:
            raise ValueError(f"seed + seeds - 1 must stay below 2^63, got seed {info.data['seed']} and {v} seeds")
        return v

    @field_validator("joint_latents")
    @classmethod
    def _joint(cls, v, info):
        m = info.data.get("m", 0)
        if v is not None and v < m:
            raise ValueError(f"the joint dictionary needs at least the model's width m={m} latents, got {v}")
        return v


def check_front_memory(cfg: Road3Config) -> None:
    """Refuse, before any work, a front whose largest batched model or road-2 dictionary cannot fit."""
    most = max([1, *(len(v) for v in cfg.strengths.values())])
    latents = round(cfg.ratio * cfg.n)
    need = max(toy_bytes(cfg.n, cfg.m, most, cfg.batch, 16384) + 4 * most * (cfg.joint_latents or cfg.n) * cfg.batch,
               4 * 4 * (cfg.samples + EVAL) * (cfg.n + cfg.m) + 8 * (CODES_EVAL + 1024) * latents)
    check_memory(need, f"road3 at n={cfg.n}, m={cfg.m} (batch {cfg.batch}, {cfg.samples} samples)",
                 "lower n, batch or samples")


def _held_out(cfg: Road3Config) -> torch.Tensor:
    return FeatureSampler(probabilities(cfg.sparsity, cfg.n), seed=cfg.seed + EVAL_SEED).sample_into(
        torch.empty(1, 16384, cfg.n))


def point(cfg: Road3Config, strength: float, W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, **extra) -> dict:
    """One point of the front: held-out loss of (W: [m, n], b: [n]) on x and road 2's recovery from its h."""
    model = make_model(KIND, 1, cfg.n, cfg.m, [0])
    model.load({"W": W[None], "b": b[None]})
    r = recoverability(W, cfg.sparsity, cfg.arch, cfg.ratio, cfg.samples, cfg.seed)
    return {"strength": strength, "loss": float(loss_per_instance(model, x, torch.ones(1, 1, cfg.n))[0]),
            "represented": r["represented"], "recovered": r["recovered"], "mmcs": r["mmcs"],
            "unfold_f1": r["unfold_f1"], "max_cos": max_cosine(W[None])[0], **extra}


def train_change(cfg: Road3Config, change: str | None, strengths: list[float], progress: bool = False):
    """Train one model per strength (instances of one batched model, every one from the same initial W) with the
    change (None: plain training, the hand-written gradient). Returns (W, b, ToyRun, Hybrid or None)."""
    C = len(strengths)
    model = make_model(KIND, C, cfg.n, cfg.m, init_seeds(1, cfg.seed) * C, device=resolve(cfg.device))
    hybrid = None
    if change is not None:
        hybrid = Hybrid(model, change, strengths, latents=cfg.joint_latents, k=cfg.joint_k, seed=cfg.seed)
    run = train_toy(KIND, cfg.n, cfg.m, probabilities([cfg.sparsity] * C, cfg.n), torch.ones(cfg.n), cfg.steps,
                    cfg.batch, seed=cfg.seed, eval_batch=2048, progress=progress, model=model, hybrid=hybrid)
    kept = kept_tensors(run)
    return kept["W"], kept["b"], run, hybrid


def _front_job(cfg: dict, method: str, strengths: list[float]) -> list[dict]:
    """One job: `method` (road2, road1 or a change) at its strengths for cfg's seed; one result per strength."""
    t = time.perf_counter()
    cfg = Road3Config.model_validate(cfg)
    x = _held_out(cfg)
    if method == "road1":  # one lambda, as road 1's own experiment runs it
        (lam,) = strengths
        r = l1_sweep([lam], cfg.n, cfg.m, cfg.sparsity, 1.0, KIND, cfg.steps, cfg.batch, seeds=1, seed=cfg.seed,
                     eval_batch=2048, device=cfg.device)
        W, b, extra = r["W"], r["b"], [{}]
    else:
        W, b, run, hybrid = train_change(cfg, None if method == "road2" else method, strengths)
        terms = hybrid.term_log() if hybrid is not None else torch.zeros(0, len(strengths))
        speed = {"model_steps": len(strengths) * run.log.steps_done, "train_s": run.log.wall_s}
        extra = [{**speed, **({"term_first": float(terms[:10, i].mean()), "term_last": float(terms[-10:, i].mean())}
                              if len(terms) else {})} for i in range(len(strengths))]
    out = [{"result": point(cfg, s, W[i], b[i], x, **extra[i]), "tensors": {"W": W[i].numpy(), "b": b[i].numpy()}}
           for i, s in enumerate(strengths)]
    for o in out:  # the job's compute, shared by its points
        o["result"]["compute_s"] = (time.perf_counter() - t) / len(out)
    return out


def _methods(cfg: Road3Config) -> dict[str, list[list[float]]]:
    """method -> its jobs' strengths (per seed): road 2 alone, each change (one batched model), each road-1 lambda."""
    out = {"road2": [[0.0]]}
    out.update({change: [list(strengths)] for change, strengths in cfg.strengths.items() if strengths})
    out["road1"] = [[lam] for lam in cfg.road1]
    return out


NUMBERS = ("loss", "represented", "recovered", "mmcs", "unfold_f1", "max_cos")


def _over_seeds(points: list[dict]) -> dict:
    """One front point from its seeds: the mean of each figure, and each seed's own (with more than one)."""
    if len(points) == 1:
        return {k: v for k, v in points[0].items() if k not in ("model_steps", "train_s", "compute_s", "seed")}
    out = {"strength": points[0]["strength"], **{k: mean(p[k] for p in points) for k in NUMBERS}}
    out["per_seed"] = [{k: p[k] for k in ("seed", "loss", "represented", "recovered", "mmcs")} for p in points]
    return out


def front(cfg: Road3Config, progress: bool = False, out: str | Path | None = None, overwrite: bool = False,
          backend: str = "local", workers: int | None = 1, ray_address: str | None = None) -> dict:
    """method -> list of points ({strength, loss, represented, recovered, mmcs, unfold_f1, max_cos}), with road2
    (strength 0) and road1 (its lambdas) among the methods; plus the verdict (`verdict`) and timings.

    With `out`, every (method, strength, seed) is a resumable point in OUT and the result is written beside them."""
    check_front_memory(cfg)
    t0 = time.perf_counter()
    settings = cfg.model_dump(exclude={"device"})
    jobs = []
    for method, groups in _methods(cfg).items():
        for strengths in groups:
            for i in range(cfg.seeds):
                seed = cfg.seed + i
                c = {**cfg.model_dump(), "seed": seed, "seeds": 1}
                key = {**settings, "seed": seed, "seeds": 1, "method": method, "group": strengths}
                jobs.append({"args": (c, method, strengths), "method": method, "points": [
                    {"name": f"{method}-{s!r}-seed{seed}", "key": key_of({**key, "strength": s})}
                    for s in strengths]})
    with Points(out, "road3", settings, overwrite, backend, workers, ray_address) as pts:
        got = pts.run(jobs, _front_job, progress, "road3 points")
        per: dict[str, dict[float, list[dict]]] = {}
        steps, train_s = {}, {}
        for job in jobs:
            for pt, s in zip(job["points"], job["args"][2]):
                r = {**got[pt["name"]]["result"], "seed": job["args"][0]["seed"]}
                per.setdefault(job["method"], {}).setdefault(s, []).append(r)
                if "model_steps" in r and pt is job["points"][0]:  # the job's speed, once
                    steps[job["method"]] = steps.get(job["method"], 0) + r["model_steps"]
                    train_s[job["method"]] = train_s.get(job["method"], 0.0) + r["train_s"]
        fr = {method: [_over_seeds(v) for v in by_s.values()] for method, by_s in per.items()}
        res = {"front": fr, "verdict": verdict(fr, cfg.m),
               "model_steps_per_s": {k: steps[k] / train_s[k] for k in steps if train_s[k] > 0},
               "points": len(got), "computed": pts.computed,
               "wall_s": sum(v["result"]["compute_s"] for v in got.values()),
               "elapsed_s": time.perf_counter() - t0}
        pts.finish(res, {})
    return res


def verdict(front: dict, m: int) -> dict:
    """The straight line between the ends and, per hybrid, its best point (most recovered, then lowest loss): its
    gain in recovered features over road 2 alone, whether it lies above the line, and the loss it paid per feature
    made recoverable beyond road 2 (None without a gain).

    Road 1's end is its weakest lambda that leaves between 1 and m features represented (no superposition left);
    when no lambda does, the strongest that keeps any feature, marked superposition_free False."""
    r2 = front["road2"][0]
    road1 = sorted(front["road1"], key=lambda p: p["strength"])
    free = [p for p in road1 if 1 <= p["represented"] <= m]
    r1 = free[0] if free else ([p for p in road1 if p["represented"] > 0] or road1)[-1]

    def line(loss: float) -> float:  # recovered on the line through the ends, at this loss
        if r1["loss"] == r2["loss"]:
            return max(r1["recovered"], r2["recovered"])
        return r2["recovered"] + (r1["recovered"] - r2["recovered"]) * (loss - r2["loss"]) / (r1["loss"] - r2["loss"])

    best = {}
    for method, pts in front.items():
        if method in ("road1", "road2"):
            continue
        p = max(pts, key=lambda p: (p["recovered"], -p["loss"]))
        gain = p["recovered"] - r2["recovered"]
        best[method] = {"strength": p["strength"], "loss": p["loss"], "recovered": p["recovered"], "gain": gain,
                        "above_line": p["recovered"] > line(p["loss"]),
                        "loss_per_feature": (p["loss"] - r2["loss"]) / gain if gain > 0 else None}
    return {"road2": {k: r2[k] for k in ("loss", "recovered")},
            "road1": {"strength": r1["strength"], "loss": r1["loss"], "recovered": r1["recovered"],
                      "represented": r1["represented"], "superposition_free": bool(free)}, "best": best}


def front_run(cfg: Road3Config, out: str | Path, overwrite: bool = False, progress: bool = False,
              backend: str = "local", workers: int | None = None, ray_address: str | None = None) -> dict:
    """`road3`: the front into OUT (resumable points, each with its W and b; result.json)."""
    return front(cfg, progress, out, overwrite, backend, workers, ray_address)


def demo(quick: bool, progress: bool) -> dict:
    """The report's front: n=20 into m=5 at S=0.9, the two stronger strengths of each change (one in quick mode)."""
    strengths = {k: v[1:2] if quick else v[1:] for k, v in default_strengths().items()}
    cfg = Road3Config(strengths=strengths, road1=[0.3] if quick else [0.3, 0.7], steps=300 if quick else 1000,
                      batch=256 if quick else 1024, samples=8000 if quick else 15_000, device="cpu")
    return front(cfg, progress, workers=1 if quick else min(2, os.cpu_count() or 1))
