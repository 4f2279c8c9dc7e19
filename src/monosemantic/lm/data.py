"""The corpus as bytes: each split's documents (in the corpus's fixed order) joined by a NUL byte.

Training draws `batch` windows of `context + 1` bytes at random offsets, from a generator seeded by (seed, step)
alone, so a resumed run sees the batches an uninterrupted one would. Evaluation reads the test split in
consecutive windows from its start: the same bytes for every model.
"""
from __future__ import annotations

import numpy as np
import torch

from monosemantic.errors import InputError
from monosemantic.real import corpus as corpus_mod

SEP = 0  # the byte between documents (no document holds a NUL: corpus files are text)
_CACHE: dict[tuple[str, str], torch.Tensor] = {}


def split_bytes(corpus: str, split: str) -> torch.Tensor:
    """The split's documents as UTF-8 bytes joined by SEP: [bytes] uint8 (read once per process)."""
    key = (str(corpus), split)
    if key not in _CACHE:
        c = corpus_mod.load(corpus)
        data = bytes([SEP]).join(c.docs[i].encode("utf-8") for i in c.ids(split))
        _CACHE[key] = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())
    return _CACHE[key]


def check_size(data: torch.Tensor, windows: int, context: int, what: str) -> None:
    need = windows * (context + 1)
    if len(data) < need:
        raise InputError(f"{what} holds {len(data)} bytes, too few for {windows} windows of context {context} "
                         f"({need} bytes); use a larger corpus or a smaller batch or context")


def batch_at(data: torch.Tensor, step: int, seed: int, batch: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): [batch, context] int64 each, y the next bytes of x; random windows drawn for (seed, step)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    start = torch.randint(0, len(data) - context, (batch,), generator=g)
    win = data[start[:, None] + torch.arange(context + 1)].long()  # [batch, context + 1]
    return win[:, :-1], win[:, 1:]


def eval_windows(data: torch.Tensor, tokens: int, context: int) -> torch.Tensor:
    """Consecutive windows of context + 1 bytes from the start, about `tokens` predicted bytes: [windows, context + 1]
    int64 (at least one window; fewer when the split is short)."""
    n = max(1, min(tokens // context, (len(data) - 1) // context))
    check_size(data, 1, context, "the test split")
    idx = torch.arange(n)[:, None] * context + torch.arange(context + 1)
    return data[idx.clamp(max=len(data) - 1)].long()
