"""Road 3: hybrids. Change training a little (`toy.hybrids`: a small L1, a coherence penalty, activation noise, a
joint TopK dictionary) and score the trade: the model's loss against how many of its n features road 2 then
recovers from its activations (`experiments.road2.recoverability`).

Every point starts from the same initial W (one init seed, shared by all strengths), sees the same data stream and
the same number of steps, and is scored on the same held-out batch with the same dictionary budget. The two ends of
the front are road 2 alone (plain training, then a dictionary) and road 1 (`experiments.road1.l1_sweep` at a
lambda strong enough to remove superposition, run exactly as that experiment runs it).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from monosemantic.config import Strict
from monosemantic.devices import DEFAULT as DEFAULT_DEVICE, resolve
from monosemantic.experiments.road1 import l1_sweep
from monosemantic.experiments.road2 import recoverability
from monosemantic.runs import check_new_dir, write_run
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
    seed: int = 0
    device: str = DEFAULT_DEVICE

    @field_validator("strengths")
    @classmethod
    def _changes(cls, v: dict) -> dict:
        for name in v:
            if name not in CHANGES:
                raise ValueError(f"unknown change {name!r}; choose from {', '.join(CHANGES)}")
        return v

    @field_validator("joint_latents")
    @classmethod
    def _joint(cls, v, info):
        m = info.data.get("m", 0)
        if v is not None and v < m:
            raise ValueError(f"the joint dictionary needs at least the model's width m={m} latents, got {v}")
        return v


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


def front(cfg: Road3Config, progress: bool = False) -> dict:
    """method -> list of points ({strength, loss, represented, recovered, mmcs, unfold_f1, max_cos}), with road2
    (strength 0) and road1 (its lambdas) among the methods; plus the verdict (`verdict`) and timings."""
    t0 = time.perf_counter()
    x = _held_out(cfg)
    out, steps_s = {}, {}
    W, b, run, _ = train_change(cfg, None, [0.0], progress)
    out["road2"] = [point(cfg, 0.0, W[0], b[0], x)]
    steps_s["road2"] = run.log.steps_done / run.log.wall_s
    for change, strengths in cfg.strengths.items():
        if not strengths:
            continue
        W, b, run, hybrid = train_change(cfg, change, strengths, progress)
        steps_s[change] = len(strengths) * run.log.steps_done / run.log.wall_s
        terms = hybrid.term_log()
        out[change] = [point(cfg, s, W[i], b[i], x, **({"term_first": float(terms[:10, i].mean()),
                                                         "term_last": float(terms[-10:, i].mean())}
                                                        if len(terms) else {}))
                       for i, s in enumerate(strengths)]
    out["road1"] = []
    for lam in cfg.road1:
        r = l1_sweep([lam], cfg.n, cfg.m, cfg.sparsity, 1.0, KIND, cfg.steps, cfg.batch, seeds=1, seed=cfg.seed,
                     eval_batch=2048, device=cfg.device)
        out["road1"].append(point(cfg, lam, r["W"][0], r["b"][0], x))
    return {"front": out, "verdict": verdict(out, cfg.m), "model_steps_per_s": steps_s,
            "wall_s": time.perf_counter() - t0}


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


def front_run(cfg: Road3Config, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """`road3`: the front, written as a run directory (config.json, result.json)."""
    out = check_new_dir(out, overwrite)
    res = front(cfg, progress)
    write_run(out, {"kind": "road3", **cfg.model_dump()}, res, {}, overwrite=overwrite)
    return res


def demo(quick: bool, progress: bool) -> dict:
    """The report's front: n=20 into m=5 at S=0.9, the two stronger strengths of each change (one in quick mode)."""
    strengths = {k: v[1:2] if quick else v[1:] for k, v in default_strengths().items()}
    cfg = Road3Config(strengths=strengths, road1=[0.3] if quick else [0.3, 0.7], steps=300 if quick else 1000,
                      batch=256 if quick else 1024, samples=8000 if quick else 15_000, device="cpu")
    return front(cfg, progress)
