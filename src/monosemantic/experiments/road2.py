"""Road 2 on the toy models' own activations: learn a dictionary from h = W x alone and score it against the
model's feature directions (the represented columns of W, as `data.toy_activations` defines them).

`toy_recovery` trains ReLU-output toy models in superposition (every sparsity one instance of a batched model),
fits the SAE family and MiniBatchDictionaryLearning on held-in activations at dictionary sizes ratio * n, and
scores on held-out activations (each model and each (model, sparsity, dictionary, size) a resumable point of
`sweeps.Points`, on local processes or Ray): MMCS, recovered@0.9 (share of the represented features, and the count out of n),
dead latents, splits and off-feature atoms, and unfolding with the learned dictionary against unfolding with the true W. Beside
each model it puts the compressed-sensing bounds (Welch, the coherence guarantee, Donoho-Tanner) at its sparsity
and dimensions per feature. `recoverability` is the same scoring for one W, which road 3 (`experiments.hybrids`)
applies to every point of its front.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, PositiveInt, field_validator

import monosemantic.recovery as R
from monosemantic.bounds import coherence_guarantee, dt_rho, toy_coherence
from monosemantic.config import Seed, Strict, check_sparsities, toy_bytes
from monosemantic.data import activations_of
from monosemantic.devices import DEFAULT as DEFAULT_DEVICE
from monosemantic.dictionary import MiniBatchDictionary, SparseAutoencoder
from monosemantic.experiments.unfolding import unfold_with
from monosemantic.experiments.sweeps import Points, key_of
from monosemantic.runs import check_memory
from monosemantic.toy.sampler import FeatureSampler, probabilities
from monosemantic.toy.train import kept_tensors, train_toy

ARCHS = ("topk", "relu", "mbdl")
MAX_RATIO = 64  # dictionary sizes ratio * n with ratio in (0, MAX_RATIO]
DATA_SEED = 90_001  # the activations' own stream (not the training one)
EVAL = 5000  # held-out activations for the scores and the unfolding
# MBDL's time goes to scikit-learn's lasso coordinate descent, one solve per sample of every batch, before each
# dictionary update (94% of a point's time; it grows with the latents and the density). 4096 samples in batches of 256 (16
# updates) recover as many features as 20,480 in batches of 1024 at a fifth of the time (n=80, m=20: 80 of 80 at
# S=0.97, 4n latents, docs/road2_road3.md).
MBDL_SAMPLES, MBDL_BATCH = 4096, 256
# The learner's own codes (dead latents, FVU) on the first CODES_EVAL held-out activations: MBDL's encoder is the
# same per-sample lasso, and on 5000 it cost more than the fit. Atoms and unfolding are scored on all EVAL.
CODES_EVAL = 2000


def distinct(values: list, what: str) -> list:
    """values, refused when one repeats (each value names a point)."""
    if len(set(values)) != len(values):
        raise ValueError(f"{what} repeat a value: {values}")
    return values


class Road2ToyConfig(Strict):
    """`road2 toy`: toy models in superposition, dictionaries from their hidden activations."""

    shapes: list[tuple[PositiveInt, PositiveInt]] = Field(default=[(20, 5), (80, 20)], min_length=1)  # (n, m)
    sparsity: list[float] = Field(default=[0.8, 0.9, 0.97], min_length=1)
    ratios: list[float] = Field(default=[0.5, 1.0, 2.0, 4.0], min_length=1)  # dictionary size / n
    archs: list[str] = Field(default=["topk", "relu", "mbdl"], min_length=1)
    steps: PositiveInt = 5000  # toy model training steps
    samples: PositiveInt = 60_000  # activations each dictionary trains on
    seed: Seed = 0
    device: str = DEFAULT_DEVICE
    _sparsity = field_validator("sparsity")(check_sparsities)

    def check_memory(self) -> None:
        """Refuse, before any work, a shape whose model, activations or largest dictionary cannot fit: the toy
        trainer's estimate, and X, the codes and their copies (float32) with the learner's own codes (float64)."""
        for n, m in self.shapes:
            latents = round(max(self.ratios) * n)
            need = max(toy_bytes(n, m, len(self.sparsity), 1024, 4096),
                       4 * 4 * (self.samples + EVAL) * (n + m) + 8 * (CODES_EVAL + 1024) * latents + 16 * latents * m)
            check_memory(need, f"road2 toy at n={n}, m={m} ({self.samples} samples, {latents} latents)",
                         "lower n, samples or the expansion factors")

    @field_validator("shapes", "sparsity", "archs")
    @classmethod
    def _distinct(cls, v: list, info) -> list:
        return distinct(v, info.field_name)

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        distinct(v, "ratios")
        for r in v:
            if not 0 < r <= MAX_RATIO:
                raise ValueError(f"dictionary sizes must lie in (0, {MAX_RATIO}n]: ratio {r} is outside")
        return v

    @field_validator("archs")
    @classmethod
    def _archs(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in ARCHS:
                raise ValueError(f"unknown dictionary {a!r}; choose from {', '.join(ARCHS)}")
        return v


def active_k(n: int, p: float, latents: int) -> int:
    """TopK's k: the expected number of active features n p, rounded up, below the dictionary size."""
    return max(1, min(math.ceil(n * p), latents - 1))


def make_dictionary(arch: str, latents: int, k: int, samples: int, seed: int):
    """The road-2 learners with this experiment's budgets: a TopK SAE, a ReLU+L1 SAE and sklearn's MBDL."""
    if arch == "mbdl":
        return MiniBatchDictionary(latents, alpha=0.05, samples=min(samples, MBDL_SAMPLES), batch=MBDL_BATCH,
                                   seed=seed)
    return SparseAutoencoder(arch, latents, k=k, samples=samples, batch=256, seed=seed)


def split_merge(F: np.ndarray, A: np.ndarray) -> dict:
    """split: true features matched (cos > 0.9) by two or more atoms; off_feature: atoms on no true feature (best
    cosine <= 0.9), which in a small dictionary are merges of several directions."""
    cos = R.cosines(F, A)  # [features, atoms]
    return {"split": int(((cos > R.THRESHOLD).sum(1) >= 2).sum()),
            "off_feature": int((cos.max(0) <= R.THRESHOLD).sum())}


def score_dictionary(est, X: np.ndarray, F: np.ndarray, codes, n: int, m: int) -> dict:
    """Scores of a fitted dictionary on held-out activations X: [samples, m] against the truth F, codes."""
    A = est.components_
    s, matching = R.dictionary_scores(F, A), R.match(F, A)
    C = est.transform(X[:CODES_EVAL])
    u = unfold_with(X, est, "omp", tol=0.05, k=m)
    out = {"mmcs": s["mmcs"], "recovered_share": s["recovered"], "recovered": int(round(s["recovered"] * len(F))),
           "dead": R.dead_latents(C), "fvu": R.fvu(X[:CODES_EVAL], est.inverse_transform(C)), **split_merge(F, A)}
    cs = R.code_scores(codes, u.codes, F, A, matching=matching)
    out.update(unfold_f1=cs["support_f1"], unfold_code_err=cs["code_rel_err"])
    return out


def fit_score(X: np.ndarray, F: np.ndarray, codes, n: int, m: int, p: float, arch: str, ratio: float,
              samples: int, seed: int) -> dict:
    """Fit a dictionary of ratio * n latents on X[:samples] and score it on the rest."""
    latents = max(1, round(ratio * n))
    est = make_dictionary(arch, latents, active_k(n, p, latents), samples, seed)
    t = time.perf_counter()
    est.fit(X[:samples])
    d = {"arch": arch, "ratio": ratio, "latents": latents, "train_s": time.perf_counter() - t}
    return {**d, **score_dictionary(est, X[samples:], F, codes[samples:], n, m)}


def recoverability(W: torch.Tensor, sparsity: float, arch: str = "topk", ratio: float = 2.0, samples: int = 60_000,
                   seed: int = 0) -> dict:
    """Road 2 on one model W: [m, n]: fit a dictionary of ratio * n latents on h = W x and score it.

    recovered counts the true features (out of n) that are represented and matched by an atom at cosine > 0.9, so
    a model that drops features does not score for them. mmcs is over the represented features (0 with none)."""
    m, n = W.shape
    p = probabilities(sparsity, n)
    X, F, codes, keep = activations_of(W, FeatureSampler(p, seed=seed + DATA_SEED), samples + EVAL)
    out = {"represented": int(len(keep))}
    if len(keep) == 0:
        return {**out, "mmcs": 0.0, "recovered": 0, "unfold_f1": 0.0}
    return {**out, **fit_score(X, F, codes, n, m, float(p[0, 0]), arch, ratio, samples, seed)}


def bounds_at(W: torch.Tensor, p: float) -> dict:
    """The compressed-sensing predictions for unfolding h = W x: expected active features k = n p against the
    coherence guarantee (1 + 1/mu)/2 and against the Donoho-Tanner k/m at delta = m/n (the represented ones)."""
    m, n = W.shape
    c = toy_coherence(W.numpy())
    r = c["represented"]
    k = r * p
    delta = min(1.0, m / max(r, 1))
    dt_k = dt_rho(delta) * m
    mu = c["coherence_no_antipodal"]
    guarantee = coherence_guarantee(min(mu, 1.0))
    return {"dims_per_feature": m / n, "expected_active": k, "coherence": mu, "welch": c["welch"],
            "coherence_k": guarantee if math.isfinite(guarantee) else None,  # None (JSON null): no bound
            "dt_k": dt_k, "dt_ok": bool(k < dt_k)}


def _model_job(n: int, m: int, sparsity: list[float], steps: int, samples: int, seed: int, device: str) -> list[dict]:
    """One point: a ReLU-output model per sparsity (instances of one batched model), its loss, represented
    features, bounds and unfolding with the true W."""
    t = time.perf_counter()
    p = probabilities(sparsity, n)
    run = train_toy("relu-output", n, m, p, torch.ones(n), steps, seeds=1, seed=seed, eval_batch=4096, device=device)
    kept = kept_tensors(run)
    rows = []
    for c, s in enumerate(sparsity):
        W = kept["W"][c]
        row = {"n": n, "m": m, "sparsity": s, "loss": run.loss[c], **bounds_at(W, 1 - s)}
        X, F, codes, keep = activations_of(W, FeatureSampler(p[c : c + 1], seed=seed + DATA_SEED), samples + EVAL)
        row["represented"] = int(len(keep))
        if len(keep):
            row["true_W"] = R.code_scores(codes[samples:], unfold_with(X[samples:], F, "omp", tol=0.05, k=m).codes)
        rows.append(row)
    return [{"result": {"rows": rows, "train_s": run.log.wall_s, "steps": run.log.steps_done,
                        "compute_s": time.perf_counter() - t},
             "tensors": {k: v.numpy() for k, v in kept.items()}}]


def _dictionary_job(W: np.ndarray, sparsity: float, arch: str, ratio: float, samples: int, seed: int) -> list[dict]:
    """One point: a dictionary of ratio * n latents on the activations of W: [m, n] at this sparsity, scored."""
    t = time.perf_counter()
    W = torch.as_tensor(W)
    m, n = W.shape
    p = probabilities([sparsity], n)
    X, F, codes, _ = activations_of(W, FeatureSampler(p, seed=seed + DATA_SEED), samples + EVAL)
    res = fit_score(X, F, codes, n, m, 1 - sparsity, arch, ratio, samples, seed)
    return [{"result": {**res, "compute_s": time.perf_counter() - t}, "tensors": {}}]


def _settings(cfg: Road2ToyConfig) -> dict:
    return cfg.model_dump(exclude={"device"})  # like a sweep's points, a run may finish on another device


def toy_recovery(cfg: Road2ToyConfig, progress: bool = False, out: str | Path | None = None, overwrite: bool = False,
                 backend: str = "local", workers: int | None = 1, ray_address: str | None = None) -> dict:
    """Per shape (n, m) and sparsity: the trained model's represented features and bounds, and per dictionary
    (arch, ratio) its scores. Returns {"models": [...], "best", "wall_s", "points", "computed", "tensors"}.

    With `out`, every model and every dictionary is a resumable point in OUT (`sweeps.Points`), and the result is
    written beside them (result.json, models.safetensors)."""
    cfg.check_memory()
    t0 = time.perf_counter()
    common = dict(steps=cfg.steps, samples=cfg.samples, seed=cfg.seed)
    with Points(out, "road2-toy", _settings(cfg), overwrite, backend, workers, ray_address) as pts:
        model_jobs = []
        for n, m in cfg.shapes:
            key = key_of({"n": n, "m": m, "sparsity": cfg.sparsity, **common})
            model_jobs.append({"args": (n, m, cfg.sparsity, cfg.steps, cfg.samples, cfg.seed, cfg.device),
                               "points": [{"name": f"model-{n}x{m}", "key": key}]})
        got = pts.run(model_jobs, _model_job, progress, "road2 toy models")
        dict_jobs, models, tensors = [], [], {}
        for (n, m), job in zip(cfg.shapes, model_jobs):
            model = got[job["points"][0]["name"]]
            tensors[f"W_{n}_{m}"] = model["tensors"]["W"]
            for c, row in enumerate(model["result"]["rows"]):
                models.append({**row, "dictionaries": [], "_W": model["tensors"]["W"][c],
                               "_key": job["points"][0]["key"]})
        for row in models:
            for arch in cfg.archs:
                for ratio in cfg.ratios:
                    if row["represented"] and not (arch == "topk" and round(ratio * row["n"]) < 2):
                        name = f"dict-{row['n']}x{row['m']}-S{row['sparsity']}-{arch}-x{ratio}"
                        key = key_of({"model": row["_key"], "sparsity": row["sparsity"], "arch": arch,
                                      "ratio": ratio, **common})
                        dict_jobs.append({"args": (row["_W"].numpy(), row["sparsity"], arch, ratio, cfg.samples,
                                                   cfg.seed), "points": [{"name": name, "key": key}], "row": row})
        got.update(pts.run(dict_jobs, _dictionary_job, progress, "road2 toy dictionaries"))
        for job in dict_jobs:
            job["row"]["dictionaries"].append(got[job["points"][0]["name"]]["result"])
        for row in models:
            del row["_W"], row["_key"]
        res = {"models": models, "points": len(got), "computed": pts.computed,
               "wall_s": sum(v["result"]["compute_s"] for v in got.values()),
               "elapsed_s": time.perf_counter() - t0}
        res["best"] = best_recovered(res)
        pts.finish(res, {"models": tensors})
    return {**res, "tensors": tensors}


def best_recovered(result: dict) -> list[dict]:
    """Per model, the dictionary with the most features recovered (ties: higher MMCS)."""
    out = []
    for r in result["models"]:
        if r["dictionaries"]:
            d = max(r["dictionaries"], key=lambda d: (d["recovered"], d["mmcs"]))
            out.append({"n": r["n"], "m": r["m"], "sparsity": r["sparsity"], "represented": r["represented"],
                        "arch": d["arch"], "latents": d["latents"], "recovered": d["recovered"], "mmcs": d["mmcs"]})
    return out


def toy_recovery_run(cfg: Road2ToyConfig, out: str | Path, overwrite: bool = False, progress: bool = False,
                     backend: str = "local", workers: int | None = None, ray_address: str | None = None) -> dict:
    """`road2 toy`: toy_recovery into OUT (resumable points; result.json and models.safetensors with every W)."""
    res = toy_recovery(cfg, progress, out, overwrite, backend, workers, ray_address)
    res.pop("tensors")
    return res


def demo(quick: bool, progress: bool) -> dict:
    """The report's road-2-on-toys results: n=20 into m=5 and n=80 into m=20 at two sparsities, TopK SAEs at 0.5n to
    4n, and MBDL on the n=20 model (on the n=80 one each MBDL point takes 10-80 s: `road2 toy --archs topk mbdl`;
    the ReLU SAE: `--archs relu`). The n=20 model trains the same in both runs (same shape, sparsities and seed)."""
    shapes = [(20, 5)] if quick else [(20, 5), (80, 20)]
    cfg = Road2ToyConfig(shapes=shapes, sparsity=[0.9, 0.97], ratios=[0.5, 1.0, 2.0] if quick else [0.5, 1.0, 2.0, 4.0],
                         archs=["topk"], steps=500 if quick else 2000, samples=8000 if quick else 30_000, device="cpu")
    workers = 1 if quick else min(2, os.cpu_count() or 1)
    res = toy_recovery(cfg, progress, workers=workers)
    mbdl = toy_recovery(cfg.model_copy(update={"shapes": [(20, 5)], "archs": ["mbdl"],
                                               "ratios": [1.0] if quick else cfg.ratios}), progress, workers=workers)
    for row, extra in zip(res["models"], mbdl["models"]):  # the n=20 rows come first in both
        row["dictionaries"] += extra["dictionaries"]
    res["best"] = best_recovered(res)
    for k in ("wall_s", "elapsed_s", "points", "computed"):
        res[k] += mbdl[k]
    res.pop("tensors")
    return res
