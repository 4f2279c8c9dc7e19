"""Road 2 on the toy models' own activations: learn a dictionary from h = W x alone and score it against the
model's feature directions (the represented columns of W, as `data.toy_activations` defines them).

`toy_recovery` trains ReLU-output toy models in superposition (every sparsity one instance of a batched model),
fits the SAE family and MiniBatchDictionaryLearning on held-in activations at dictionary sizes ratio * n, and
scores on held-out activations: MMCS, recovered@0.9 (share of the represented features, and the count out of n),
dead latents, splits and off-feature atoms, and unfolding with the learned dictionary against unfolding with the true W. Beside
each model it puts the compressed-sensing bounds (Welch, the coherence guarantee, Donoho-Tanner) at its sparsity
and dimensions per feature. `recoverability` is the same scoring for one W, which road 3 (`experiments.hybrids`)
applies to every point of its front.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, PositiveInt, field_validator

import monosemantic.recovery as R
from monosemantic.bounds import coherence_guarantee, dt_rho, toy_coherence
from monosemantic.config import Strict, check_sparsities
from monosemantic.data import activations_of
from monosemantic.devices import DEFAULT as DEFAULT_DEVICE
from monosemantic.dictionary import MiniBatchDictionary, SparseAutoencoder
from monosemantic.experiments.unfolding import unfold_with
from monosemantic.runs import check_new_dir, write_run
from monosemantic.toy.sampler import FeatureSampler, probabilities
from monosemantic.toy.train import kept_tensors, train_toy

ARCHS = ("topk", "relu", "mbdl")
MAX_RATIO = 64  # dictionary sizes ratio * n with ratio in (0, MAX_RATIO]
DATA_SEED = 90_001  # the activations' own stream (not the training one)
EVAL = 5000  # held-out activations for the scores and the unfolding


class Road2ToyConfig(Strict):
    """`road2 toy`: toy models in superposition, dictionaries from their hidden activations."""

    shapes: list[tuple[PositiveInt, PositiveInt]] = Field(default=[(20, 5), (80, 20)], min_length=1)  # (n, m)
    sparsity: list[float] = Field(default=[0.8, 0.9, 0.97], min_length=1)
    ratios: list[float] = Field(default=[0.5, 1.0, 2.0, 4.0], min_length=1)  # dictionary size / n
    archs: list[str] = Field(default=["topk", "relu", "mbdl"], min_length=1)
    steps: PositiveInt = 5000  # toy model training steps
    samples: PositiveInt = 60_000  # activations each dictionary trains on
    seed: int = 0
    device: str = DEFAULT_DEVICE
    _sparsity = field_validator("sparsity")(check_sparsities)

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
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
        return MiniBatchDictionary(latents, alpha=0.05, samples=min(samples, 20 * 1024), batch=1024, seed=seed)
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
    C = est.transform(X)
    u = unfold_with(X, est, "omp", tol=0.05, k=m)
    out = {"mmcs": s["mmcs"], "recovered_share": s["recovered"], "recovered": int(round(s["recovered"] * len(F))),
           "dead": R.dead_latents(C), "fvu": R.fvu(X, est.inverse_transform(C)), **split_merge(F, A)}
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


def toy_recovery(cfg: Road2ToyConfig, progress: bool = False) -> dict:
    """Per shape (n, m) and sparsity: the trained model's represented features and bounds, and per dictionary
    (arch, ratio) its scores. Returns {"models": [...], "wall_s", "tensors"}."""
    t0 = time.perf_counter()
    models, tensors = [], {}
    for n, m in cfg.shapes:
        p = probabilities(cfg.sparsity, n)
        run = train_toy("relu-output", n, m, p, torch.ones(n), cfg.steps, seeds=1, seed=cfg.seed, progress=progress,
                        eval_batch=4096, device=cfg.device)
        kept = kept_tensors(run)
        tensors[f"W_{n}_{m}"] = kept["W"]
        for c, s in enumerate(cfg.sparsity):
            W = kept["W"][c]
            row = {"n": n, "m": m, "sparsity": s, "loss": run.loss[c], **bounds_at(W, 1 - s), "dictionaries": []}
            X, F, codes, keep = activations_of(W, FeatureSampler(p[c : c + 1], seed=cfg.seed + DATA_SEED),
                                               cfg.samples + EVAL)
            row["represented"] = int(len(keep))
            if len(keep):
                truth = unfold_with(X[cfg.samples:], F, "omp", tol=0.05, k=m)
                row["true_W"] = R.code_scores(codes[cfg.samples:], truth.codes)
            for arch in cfg.archs:
                for ratio in cfg.ratios:
                    if len(keep) and not (arch == "topk" and round(ratio * n) < 2):
                        row["dictionaries"].append(fit_score(X, F, codes, n, m, 1 - s, arch, ratio, cfg.samples,
                                                             cfg.seed))
            models.append(row)
    return {"models": models, "wall_s": time.perf_counter() - t0, "tensors": tensors}


def best_recovered(result: dict) -> list[dict]:
    """Per model, the dictionary with the most features recovered (ties: higher MMCS)."""
    out = []
    for r in result["models"]:
        if r["dictionaries"]:
            d = max(r["dictionaries"], key=lambda d: (d["recovered"], d["mmcs"]))
            out.append({"n": r["n"], "m": r["m"], "sparsity": r["sparsity"], "represented": r["represented"],
                        "arch": d["arch"], "latents": d["latents"], "recovered": d["recovered"], "mmcs": d["mmcs"]})
    return out


def toy_recovery_run(cfg: Road2ToyConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """`road2 toy`: toy_recovery, written as a run directory (config.json, result.json, models.safetensors)."""
    out = check_new_dir(out, overwrite)
    res = toy_recovery(cfg, progress)
    tensors = res.pop("tensors")
    res["best"] = best_recovered(res)
    write_run(out, {"kind": "road2-toy", **cfg.model_dump()}, res, {"models": tensors}, overwrite=overwrite)
    return res


def demo(quick: bool, progress: bool) -> dict:
    """The report's road-2-on-toys results: n=20 into m=5 and n=80 into m=20 at two sparsities, TopK SAEs (the ReLU
    SAE and MBDL, 10-100x slower at these sizes, on the CLI: `road2 toy --archs topk relu mbdl`)."""
    cfg = Road2ToyConfig(shapes=[(20, 5)] if quick else [(20, 5), (80, 20)], sparsity=[0.9, 0.97],
                         ratios=[0.5, 1.0, 2.0] if quick else [0.5, 1.0, 2.0, 4.0],
                         archs=["topk"], steps=500 if quick else 2000,
                         samples=8000 if quick else 30_000, device="cpu")
    res = toy_recovery(cfg, progress)
    res.pop("tensors")
    res["best"] = best_recovered(res)
    return res
