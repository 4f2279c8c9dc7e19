"""Training data for the dictionary learners: tensors, numpy arrays, memory-mapped files, iterators of batches.

`Batches` yields float32 torch batches [batch, d]. For an array (in memory or memory-mapped) the order of
step s is a pure function of (seed, s): each pass is a fresh permutation drawn from `seed + pass`, so a
resumed fit sees the same batches as an uninterrupted one. A memory-mapped array is read in contiguous
blocks visited in random order and shuffled inside the block, so the disk sees long sequential reads.
An iterator is re-cut into full batches (a ragged tail is kept for the next batch) and read once.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from monosemantic.errors import InputError
from monosemantic.data import as_matrix, check_matrix

BLOCK = 1 << 16  # rows read at once from a memory-mapped array


class Batches:
    """Endless [batch, d] float32 batches from an array (seeded, resumable) or one pass of an iterator."""

    def __init__(self, source, batch: int, seed: int = 0, start_step: int = 0):
        self.batch, self.seed = batch, seed
        # `on_disk`: an array-like over files (an activation store's rows), read like a memory-mapped array
        self._disk = isinstance(source, np.memmap) or getattr(source, "on_disk", False)
        if isinstance(source, (torch.Tensor, np.ndarray)) or hasattr(source, "toarray") or self._disk:
            self.X = source if getattr(source, "on_disk", False) else as_matrix(source)
            self.n, self.d = self.X.shape
            if self.n < batch:
                raise InputError(f"{self.n} samples are fewer than one batch of {batch}")
            self.per_pass = self.n // batch  # the ragged tail of a pass is dropped
            self.it = None
            self.step = start_step
            self._pass, self._order = -1, None
        elif isinstance(source, Iterable):
            self.X, self.it, self.n, self.d = None, iter(source), None, None
            self._buf: list[torch.Tensor] = []
            self._have = 0
        else:
            raise InputError(f"training data must be an array, a tensor or an iterator of batches, got {type(source).__name__}")

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self._next_array() if self.it is None else self._next_iter()

    def _order_of_pass(self, p: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, p])
        if self._disk:  # blocks in random order, rows shuffled inside each block
            starts = rng.permutation(np.arange(0, self.n, BLOCK))
            return np.concatenate([s + rng.permutation(min(BLOCK, self.n - s)) for s in starts])
        return rng.permutation(self.n)

    def _next_array(self) -> torch.Tensor:
        p, b = divmod(self.step, self.per_pass)
        if p != self._pass:
            self._pass, self._order = p, self._order_of_pass(p)
        idx = self._order[b * self.batch:(b + 1) * self.batch]
        self.step += 1
        if getattr(self.X, "on_disk", False):  # reads just the batch's rows, from the block's shards
            return torch.from_numpy(np.asarray(self.X[idx], dtype=np.float32))
        if self._disk:
            lo = idx.min()
            block = np.asarray(self.X[lo:idx.max() + 1], dtype=np.float32)  # one sequential read
            return torch.from_numpy(block[idx - lo])
        return self.X.index_select(0, torch.from_numpy(idx))

    def _next_iter(self) -> torch.Tensor:
        while self._have < self.batch:
            chunk = as_matrix(next(self.it), "a batch")  # StopIteration ends the fit
            if self.d is None:
                self.d = chunk.shape[1]
            elif chunk.shape[1] != self.d:
                raise InputError(f"a batch has d={chunk.shape[1]}, earlier ones d={self.d}")
            chunk = torch.as_tensor(np.asarray(chunk, dtype=np.float32)) if isinstance(chunk, np.ndarray) else chunk
            self._buf.append(chunk)
            self._have += len(chunk)
        cat = torch.cat(self._buf)
        out, rest = cat[:self.batch], cat[self.batch:]
        self._buf, self._have = ([rest] if len(rest) else []), len(rest)
        return out

    def sample(self, n: int) -> torch.Tensor:
        """Up to n rows for initialisation (geometric median, data statistics), without consuming the stream."""
        if self.X is None:
            first = next(self)
            self._buf.insert(0, first)
            self._have += len(first)
            return first[:n]
        rng = np.random.default_rng([self.seed, 1 << 30])
        idx = np.sort(rng.choice(self.n, size=min(n, self.n), replace=False))
        return torch.from_numpy(np.asarray(self.X[idx], dtype=np.float32))
