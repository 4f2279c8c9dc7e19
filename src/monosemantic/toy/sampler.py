"""Synthetic sparse features for toy models (Elhage et al. 2022).

Each feature x_i is 0 with probability S (the sparsity) and otherwise U[0,1] (U[-1,1] for the
signed features of the absolute-value model). Many models (instances) train at once; instances
never interact, so they share one uniform draw per (sample, feature):

    u ~ U[0,1)   feature on when u > 1 - p   magnitude (u - (1 - p)) / p ~ U(0,1)

Each instance alone sees exactly the specified distribution, and one [batch, n] draw serves all
instances, so data generation costs 1/instances of drawing every entry, and the transform is a
single fused multiply-add and a ReLU. Correlated and anti-correlated feature sets (the paper's
section on correlated features) draw their own randomness on a slower, dense path.

Shapes: probabilities `p: [instances, n]`; batches are `x: [instances, batch, n]` (instance-major,
so each instance's batch is one contiguous matrix for `torch.bmm`); `sample` returns the
`[batch, instances, n]` view of the same storage.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monosemantic.errors import InputError
from monosemantic.runs import check_memory


def importance(n: int, decay: float = 1.0) -> torch.Tensor:
    """Feature importances I_i = decay**i: [n]."""
    if n < 1:
        raise InputError(f"n must be positive, got {n}")
    if not decay > 0:
        raise InputError(f"importance decay must be positive, got {decay}")
    check_memory(8 * n, f"importances of n={n} features", "lower n")
    return decay ** torch.arange(n, dtype=torch.float32)


def probabilities(sparsity: float | Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    """Feature probabilities 1 - S as [instances, n] from sparsities S.

    `sparsity` is a scalar (one instance), a vector (one instance per value) or a matrix
    [instances, n] (a sparsity per feature). Every S must lie in [0, 1).
    """
    s = torch.as_tensor(sparsity, dtype=torch.float64)
    if n < 1:
        raise InputError(f"n must be positive, got {n}")
    rows = s.shape[0] if s.ndim == 2 else max(1, s.numel())
    check_memory(13 * rows * n, f"feature probabilities of {rows} models of n={n} features", "lower n")
    if s.ndim == 0:
        s = s.reshape(1, 1).expand(1, n)
    elif s.ndim == 1:
        s = s[:, None].expand(len(s), n)
    elif s.ndim != 2 or s.shape[1] != n:
        raise InputError(f"per-feature sparsity must be [instances, {n}], got {list(s.shape)}")
    if s.numel() == 0:
        raise InputError("no sparsity values given")
    if not torch.isfinite(s).all() or (s < 0).any() or (s >= 1).any():
        bad = s[~(torch.isfinite(s) & (s >= 0) & (s < 1))][0].item()
        raise InputError(f"sparsity must lie in [0, 1), got {bad}")
    return (1 - s).float().contiguous()


class FeatureSampler:
    """Seeded batches of sparse features for `instances` models at once.

    p: [instances, n] feature probabilities. `correlated_sets` sets of `set_size` features come
    first (features of a set are on or off together, magnitudes independent), then
    `anticorrelated_sets` (at most one feature of a set is on; each keeps its probability p), then
    independent features. `signed` draws magnitudes U[-1,1] instead of U[0,1].
    """

    def __init__(
        self,
        p: torch.Tensor,
        seed: int = 0,
        signed: bool = False,
        correlated_sets: int = 0,
        anticorrelated_sets: int = 0,
        set_size: int = 2,
    ):
        p = torch.as_tensor(p, dtype=torch.float32)
        if p.ndim != 2:
            raise InputError(f"feature probabilities must be [instances, n], got {list(p.shape)}")
        if not ((p > 0) & (p <= 1)).all():
            raise InputError("feature probabilities must lie in (0, 1]")
        n = p.shape[1]
        if correlated_sets < 0 or anticorrelated_sets < 0 or set_size < 2:
            raise InputError("feature sets need counts >= 0 and set_size >= 2")
        if (correlated_sets + anticorrelated_sets) * set_size > n:
            raise InputError(f"{correlated_sets + anticorrelated_sets} sets of {set_size} do not fit in n={n}")
        if anticorrelated_sets:
            lo = correlated_sets * set_size
            hi = lo + anticorrelated_sets * set_size
            if (p[:, lo:hi] * set_size > 1).any():
                raise InputError(f"anti-correlated sets of {set_size} need p <= 1/{set_size}")
        self.p = p
        self.instances, self.n = p.shape
        self.signed = signed
        self.correlated_sets = correlated_sets
        self.anticorrelated_sets = anticorrelated_sets
        self.set_size = set_size
        self.rng = np.random.default_rng(seed)
        inv_p = (1 / p)[:, None, :]  # [instances, 1, n]
        self._scale, self._shift = inv_p, 1 - inv_p
        self._u = np.empty((1, 0, n), dtype=np.float32)

    @property
    def dense_only(self) -> bool:
        return not (self.signed or self.correlated_sets or self.anticorrelated_sets)

    def sample(self, batch: int) -> torch.Tensor:
        """x: [batch, instances, n] (a view of instance-major storage)."""
        return self.sample_into(torch.empty(self.instances, batch, self.n)).transpose(0, 1)

    def sample_into(self, x: torch.Tensor) -> torch.Tensor:
        """Fill x: [instances, batch, n] in place and return it."""
        if x.shape[0] != self.instances or x.shape[2] != self.n:
            raise InputError(f"buffer must be [{self.instances}, batch, {self.n}], got {list(x.shape)}")
        if not self.dense_only:
            x.copy_(self._sample_structured(x.shape[1]))
            return x
        u = self._uniform(x.shape[1])  # [1, batch, n] on the CPU, shared by every instance
        if self._scale.device != x.device:
            self._scale, self._shift = self._scale.to(x.device), self._shift.to(x.device)
        # the same draws on every device (numpy's generator): one upload of [batch, n] per batch on a GPU
        torch.addcmul(self._shift, u.to(x.device), self._scale, out=x)
        return x.relu_()

    def _uniform(self, batch: int) -> torch.Tensor:
        if self._u.shape[1] != batch:
            self._u = np.empty((1, batch, self.n), dtype=np.float32)
        self.rng.random(out=self._u, dtype=np.float32)
        return torch.from_numpy(self._u)

    def _sample_structured(self, batch: int) -> torch.Tensor:
        I, n, k = self.instances, self.n, self.set_size
        p = self.p[:, None, :].numpy()  # [I, 1, n]
        on = self.rng.random((I, batch, n), dtype=np.float32) < p
        c_end = self.correlated_sets * k
        a_end = c_end + self.anticorrelated_sets * k
        if self.correlated_sets:
            # one draw per set decides all its members
            set_p = p[..., :c_end].reshape(I, 1, -1, k).mean(-1)
            set_on = self.rng.random((I, batch, self.correlated_sets), dtype=np.float32) < set_p
            on[..., :c_end] = np.repeat(set_on, k, axis=-1)
        if self.anticorrelated_sets:
            # the set is on with probability k p, then exactly one member is chosen: marginal p each
            set_p = p[..., c_end:a_end].reshape(I, 1, -1, k).mean(-1)
            set_on = self.rng.random((I, batch, self.anticorrelated_sets), dtype=np.float32) < k * set_p
            member = self.rng.integers(0, k, size=(I, batch, self.anticorrelated_sets))
            chosen = member[..., None] == np.arange(k)
            on[..., c_end:a_end] = (set_on[..., None] & chosen).reshape(I, batch, -1)
        mag = self.rng.random((I, batch, n), dtype=np.float32)
        if self.signed:
            mag = 2 * mag - 1
        return torch.from_numpy(np.where(on, mag, np.float32(0)))
