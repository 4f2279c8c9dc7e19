"""Typed configurations, validated at the edge (CLI, spec files); library functions take plain arguments."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic import ValidationError, field_validator, model_validator

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


class ToyTrainConfig(Strict):
    """One batch of toy models: one configuration per sparsity value, best of `seeds` kept for each."""

    model: ModelKind = "relu-output"
    n: PositiveInt = 5
    m: PositiveInt = 2
    sparsity: list[float] = Field(default=[0.0], min_length=1)
    importance_decay: PositiveFloat = 1.0
    importance: list[NonNegativeFloat] | None = None  # explicit I_i; overrides importance_decay
    steps: PositiveInt = 10_000
    batch: PositiveInt = 1024
    seeds: PositiveInt = 1
    seed: NonNegativeInt = 0
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    schedule: Literal["constant", "cosine"] = "constant"
    warmup: NonNegativeInt = 0
    eval_batch: PositiveInt = 16384
    correlated_sets: NonNegativeInt = 0
    anticorrelated_sets: NonNegativeInt = 0
    set_size: int = Field(default=2, ge=2)
    l1: NonNegativeFloat = 0.0  # penalty l1 * mean_b ||h||_1 on hidden activations (relu-output, relu-hidden)

    _sparsity = field_validator("sparsity")(check_sparsities)

    @model_validator(mode="after")
    def _shapes(self) -> ToyTrainConfig:
        if self.importance is not None and len(self.importance) != self.n:
            raise ValueError(f"importance has {len(self.importance)} values for n={self.n} features")
        if (self.correlated_sets + self.anticorrelated_sets) * self.set_size > self.n:
            raise ValueError(f"feature sets need {self.set_size} features each; n={self.n} is too small")
        if self.l1 > 0 and self.model not in L1_MODELS:
            raise ValueError(f"l1: the {self.model} model takes no L1 penalty on hidden activations")
        if self.warmup >= self.steps:
            raise ValueError(f"warmup ({self.warmup}) must be shorter than steps ({self.steps})")
        return self
