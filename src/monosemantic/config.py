"""Typed configurations, validated at the edge (CLI, spec files). Each default is written once, here: the CLI's
options read theirs from these classes.

The toy-training configs share one base: `TrainConfig` (the model's size and how long to train it),
`AdamWConfig` (adds the model kind and the optimizer), then `ToyTrainConfig` (`toy train`), the sweep's
`PointConfig` and the road-1 configs."""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic import ValidationError, field_validator, model_validator

from monosemantic.devices import DEFAULT as DEFAULT_DEVICE
from monosemantic.errors import InputError
from monosemantic.runs import check_memory
from monosemantic.toy.models import L1_MODELS
from monosemantic.toy.train import toy_bytes  # noqa: F401  (the sweeps and hybrids size their work with it)

ModelKind = Literal["linear", "relu-output", "relu-hidden", "abs"]
Seed = Annotated[int, Field(ge=0, lt=2**63)]  # torch's and numpy's generators take 64-bit seeds


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inf or NaN is never a meaningful setting


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

    @property
    def instances(self) -> int:
        """Models trained side by side (one batched model)."""
        return self.seeds

    @model_validator(mode="after")
    def _memory(self) -> TrainConfig:
        check_memory(toy_bytes(self.n, self.m, self.instances, self.batch, self.eval_batch),
                     f"training {self.instances} toy models (n={self.n}, m={self.m}, batch={self.batch}, "
                     f"eval_batch={self.eval_batch})", "lower n, batch, eval_batch, seeds or the number of instances")
        return self


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
    seed: Seed = 0
    correlated_sets: NonNegativeInt = 0
    anticorrelated_sets: NonNegativeInt = 0
    set_size: int = Field(default=2, ge=2)
    l1: NonNegativeFloat = 0.0  # penalty l1 * mean_b ||h||_1 on hidden activations (relu-output, relu-hidden)
    device: str = DEFAULT_DEVICE  # cpu | cuda | cuda:N | auto (CUDA when available); checked by devices.resolve
    snapshot_every: int | None = None  # copy the weights every N steps into snapshots.safetensors (None: never)

    _sparsity = field_validator("sparsity")(check_sparsities)

    @property
    def instances(self) -> int:
        return len(self.sparsity) * self.seeds

    @model_validator(mode="after")
    def _shapes(self) -> ToyTrainConfig:
        if self.importance is not None and len(self.importance) != self.n:
            raise ValueError(f"importance has {len(self.importance)} values for n={self.n} features")
        if (self.correlated_sets + self.anticorrelated_sets) * self.set_size > self.n:
            raise ValueError(f"feature sets need {self.set_size} features each; n={self.n} is too small")
        if self.l1 > 0 and self.model not in L1_MODELS:
            raise ValueError(f"l1: the {self.model} model takes no L1 penalty on hidden activations")
        if self.snapshot_every is not None and not 1 <= self.snapshot_every <= self.steps:
            raise ValueError(f"the snapshot period must lie in [1, steps={self.steps}], got {self.snapshot_every}")
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
    seed: Seed = 0
    device: str = DEFAULT_DEVICE  # cpu | cuda | cuda:N | auto (CUDA when available); checked by devices.resolve

    @property
    def instances(self) -> int:
        per = getattr(self, "sparsity", None)
        return (len(per) if isinstance(per, list) else len(getattr(self, "lambdas", [0]))) * self.seeds


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
    seed: Seed = 0
    checkpoint: str | None = None
    checkpoint_every: PositiveInt = 1000
    resample_every: NonNegativeInt = 50
    warmup: float = Field(default=0.02, ge=0, lt=1)
    holdout: float = Field(default=0.0, ge=0, lt=1)  # share of the rows, the last ones, kept out of training
    device: str = DEFAULT_DEVICE  # SAEs: cpu | cuda | cuda:N | auto; the classical learners run on the CPU
    dtype: Literal["float32", "bfloat16"] = "float32"  # SAEs: the training step's precision (bfloat16: a GPU)

    @model_validator(mode="after")
    def _k(self) -> SaeTrainConfig:
        from monosemantic.dictionary import archs

        if self.arch in archs.ARCHS:  # each SAE architecture refuses its own impossible settings (k >= latents)
            archs.get(self.arch)(k=self.k, l1=self.l1, l0=self.l0).check(self.latents)
        elif self.checkpoint is not None:  # the classical learners
            raise ValueError(f"the {self.arch} learner cannot resume from a checkpoint (only the SAEs can); "
                             f"drop --checkpoint")
        self.check_memory(1)
        return self

    def check_memory(self, d: int) -> None:
        """Refuse a dictionary that cannot fit: its weights with gradients and Adam moments, and a batch's
        activations and codes (float32)."""
        batch = self.batch or 1024
        check_memory(sae_bytes(self.latents, d, batch), f"a dictionary of {self.latents} latents on d={d} (batch {batch})",
                     "lower --latents or --batch")


def sae_bytes(latents: int, d: int, batch: int = 1024) -> int:
    """Peak memory of training a dictionary (float32): its weights with gradients and Adam moments, and a batch's
    activations and codes."""
    return 4 * (8 * latents * d + 6 * batch * latents + 4 * batch * d + 2048 * latents)


class UnfoldConfig(Strict):
    """`unfold`: codes of a data file against a dictionary."""

    data: str
    dictionary: str
    method: str = "omp"  # omp | l1 | fista | sae (checked by unfold_run)
    tol: float = 1e-6  # omp: relative residual ||x - D c|| <= tol ||x||
    k: int | None = None  # omp: at most k atoms per sample (default min(atoms, d))
    alpha: float = 0.01  # l1, fista: the lasso penalty (unit atoms; checked by unfold_run)
    positive: bool = False  # l1, fista: non-negative codes
    device: str = DEFAULT_DEVICE  # cpu | cuda | cuda:N | auto (CUDA when available); checked by devices.resolve

    @field_validator("tol")
    @classmethod
    def _tol(cls, v: float) -> float:
        if not 0 < v <= 1:  # a relative residual: at 1 no atom is needed, above it is meaningless
            raise ValueError(f"tol must be > 0 and at most 1 (it is relative: ||x - D c|| <= tol ||x||), got {v}")
        return v


SORTS = ("frequency", "atom", "max", "cosine")


class FeaturesConfig(Strict):
    """`features list` / `features describe`, validated at the CLI."""

    dictionary: str
    data: str | None = None
    top: PositiveInt = 5
    limit: NonNegativeInt = 20
    sort: Literal[SORTS] = "frequency"
    sample: NonNegativeInt | None = None
