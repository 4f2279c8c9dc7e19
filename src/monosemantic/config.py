"""Typed configurations, validated at the edge (CLI, spec files). Each default is written once, here: the CLI's
options read theirs from these classes.

The toy-training configs share one base: `TrainConfig` (the model's size and how long to train it),
`AdamWConfig` (adds the model kind and the optimizer), then `ToyTrainConfig` (`toy train`), the sweep's
`PointConfig` and the road-1 configs."""
from __future__ import annotations

import math
from typing import Literal

import torch

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic import ValidationError, field_validator, model_validator

from monosemantic.devices import DEFAULT as DEFAULT_DEVICE
from monosemantic.errors import InputError
from monosemantic.toy.models import L1_MODELS

ModelKind = Literal["linear", "relu-output", "relu-hidden", "abs"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def validate(cls: type[BaseModel], data: dict) -> BaseModel:
    """cls(**data), with the first problem as one InputError line naming the field."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or cls.__name__
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(f"{where}: {msg}") from None


def check_sparsities(v: list[float]) -> list[float]:
    """A pydantic field validator for lists of sparsities S in [0, 1)."""
    for s in v:
        if not 0 <= s < 1:
            raise ValueError(f"sparsity must lie in [0, 1), got {s}")
    return v


class TrainConfig(Strict):
    """A batch of toy models: its size and how long to train it."""

    n: PositiveInt = 5
    m: PositiveInt = 2
    importance_decay: PositiveFloat = 1.0  # I_i = decay**i
    steps: PositiveInt = 10_000
    batch: PositiveInt = 1024
    seeds: PositiveInt = 1
    eval_batch: PositiveInt = 16384


class AdamWConfig(TrainConfig):
    """... with its model kind, AdamW and the learning-rate schedule."""

    model: ModelKind = "relu-output"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    schedule: Literal["constant", "cosine"] = "constant"
    warmup: NonNegativeInt = 0

    @model_validator(mode="after")
    def _warmup(self) -> AdamWConfig:
        if self.warmup >= self.steps:
            raise ValueError(f"warmup ({self.warmup}) must be shorter than steps ({self.steps})")
        return self


class ToyTrainConfig(AdamWConfig):
    """One batch of toy models: one configuration per sparsity value, best of `seeds` kept for each."""

    sparsity: list[float] = Field(default=[0.0], min_length=1)
    importance: list[NonNegativeFloat] | None = None  # explicit I_i; overrides importance_decay
    seed: NonNegativeInt = 0
    correlated_sets: NonNegativeInt = 0
    anticorrelated_sets: NonNegativeInt = 0
    set_size: int = Field(default=2, ge=2)
    l1: NonNegativeFloat = 0.0  # penalty l1 * mean_b ||h||_1 on hidden activations (relu-output, relu-hidden)
    device: str = DEFAULT_DEVICE  # cpu | cuda | cuda:N | auto (CUDA when available); checked by devices.resolve

    _sparsity = field_validator("sparsity")(check_sparsities)

    @model_validator(mode="after")
    def _shapes(self) -> ToyTrainConfig:
        if self.importance is not None and len(self.importance) != self.n:
            raise ValueError(f"importance has {len(self.importance)} values for n={self.n} features")
        if (self.correlated_sets + self.anticorrelated_sets) * self.set_size > self.n:
            raise ValueError(f"feature sets need {self.set_size} features each; n={self.n} is too small")
        if self.l1 > 0 and self.model not in L1_MODELS:
            raise ValueError(f"l1: the {self.model} model takes no L1 penalty on hidden activations")
        return self


def default(cls: type[BaseModel], name: str):
    """The default of field `name` of a config class: where the CLI's options read theirs."""
    field = cls.model_fields[name]
    return field.get_default(call_default_factory=True)


# ---- toy experiments: road 1


def default_lambdas(count: int = 12, lo: float = 10**-2.5, hi: float = 2.0) -> list[float]:
    """lambda = 0 (the model in superposition), then `count` log-spaced values from no effect to all dead."""
    return [0.0] + torch.logspace(math.log10(lo), math.log10(hi), count, dtype=torch.float64).tolist()


class _Train(TrainConfig):
    m: PositiveInt = 5
    seeds: PositiveInt = 3
    seed: NonNegativeInt = 0
    device: str = DEFAULT_DEVICE  # cpu | cuda | cuda:N | auto (CUDA when available); checked by devices.resolve


class L1SweepConfig(_Train):
    n: PositiveInt = 20
    importance_decay: PositiveFloat = 0.7
    model: str = "relu-hidden"
    sparsity: float = Field(default=0.9, ge=0, lt=1)
    lambdas: list[NonNegativeFloat] = Field(default_factory=default_lambdas, min_length=1)

    @field_validator("model")
    @classmethod
    def _penalised(cls, v: str) -> str:
        if v not in ("relu-output", "relu-hidden"):
            raise ValueError(f"the {v} model takes no L1 penalty on hidden activations; use relu-hidden or relu-output")
        return v


class MoEConfig(_Train):
    n: PositiveInt = 20
    importance_decay: PositiveFloat = 0.9
    experts: int = 4
    k: int = 1
    balance: NonNegativeFloat = 0.01
    seeds: PositiveInt = 2
    sparsity: list[float] = Field(default=[0.7, 0.9, 0.97, 0.99], min_length=1)
    _sparsity = field_validator("sparsity")(check_sparsities)


class EffectiveSizeConfig(_Train):
    n: PositiveInt = 60
    importance_decay: PositiveFloat = 1.0
    sparsity: list[float] = Field(default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995], min_length=1)
    _sparsity = field_validator("sparsity")(check_sparsities)


# ---- dictionaries, unfolding and features


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


class UnfoldConfig(Strict):
    """`unfold`: codes of a data file against a dictionary."""

    data: str
    dictionary: str
    method: str = "omp"  # omp | l1 | fista | sae (checked by unfold_run)
    tol: float = 1e-6  # omp: relative residual ||x - D c|| <= tol ||x|| (checked by unfold_run)
    k: int | None = None  # omp: at most k atoms per sample (default min(atoms, d))
    alpha: float = 0.01  # l1, fista: the lasso penalty (unit atoms; checked by unfold_run)
    positive: bool = False  # l1, fista: non-negative codes
    device: str = DEFAULT_DEVICE  # cpu | cuda | cuda:N | auto (CUDA when available); checked by devices.resolve


SORTS = ("frequency", "atom", "max", "cosine")


class FeaturesConfig(Strict):
    """`features list` / `features describe`, validated at the CLI."""

    dictionary: str
    data: str | None = None
    top: PositiveInt = 5
    limit: NonNegativeInt = 20
    sort: Literal[SORTS] = "frequency"
    sample: NonNegativeInt | None = None
