"""Units read on real data: each unit's top-activating rows and how monosemantic its top tokens are.

A unit is a column of an activation matrix: a model's MLP neuron, or a dictionary's latent (its code). The same
measure is used for both, so that neurons and features are compared on the same rows.

Monosemanticity of a unit is `1 - H / log(k)`, where H is the entropy (nats) of the token ids of its k
top-activating rows (counted once each, unweighted). It is 1 when all k rows are the same token and 0 when all
are different. Units with fewer than two positive activations have no value (NaN): they are dead or nearly so.
The normalisation uses the number of positive rows found (at most k), so a rare unit is not scored as
monosemantic only because it fired few times.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

TOP_K = 32  # top-activating rows kept per unit


def top_rows(chunks: Iterable[torch.Tensor | np.ndarray], k: int = TOP_K) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest activations of each unit over row chunks `A: [rows, units]`, streamed.

    Returns `values: [units, k]` (descending; -inf where fewer than k rows were seen) and `rows: [units, k]`
    (global row indices, int64; -1 where there is no row)."""
    best_v = best_r = None
    start = 0
    for A in chunks:
        A = torch.as_tensor(np.asarray(A) if not isinstance(A, torch.Tensor) else A, dtype=torch.float32)
        idx = torch.arange(start, start + len(A)).expand(A.shape[1], -1)  # [units, rows]
        v, r = A.T, idx
        if best_v is not None:
            v, r = torch.cat([best_v, v], 1), torch.cat([best_r, r], 1)
        kk = min(k, v.shape[1])
        v, i = v.topk(kk, dim=1)
        best_v, best_r = v, r.gather(1, i)
        start += len(A)
    if best_v is None:
        raise ValueError("top_rows needs at least one chunk")
    if best_v.shape[1] < k:  # fewer rows than k in all
        pad = k - best_v.shape[1]
        best_v = torch.cat([best_v, torch.full((len(best_v), pad), -torch.inf)], 1)
        best_r = torch.cat([best_r, torch.full((len(best_r), pad), -1, dtype=torch.int64)], 1)
    return best_v, best_r


def monosemanticity(values: torch.Tensor, tokens: np.ndarray | torch.Tensor) -> np.ndarray:
    """`1 - H(top tokens) / log(n)` per unit: [units] float64, NaN where a unit has fewer than 2 positive rows.

    values: [units, k] from `top_rows`; tokens: [units, k] token ids of those rows."""
    tokens = np.asarray(tokens)
    live = np.asarray(values > 0)  # [units, k]
    out = np.full(len(tokens), np.nan)
    for j in range(len(tokens)):
        t = tokens[j][live[j]]
        if len(t) < 2:
            continue
        _, counts = np.unique(t, return_counts=True)
        p = counts / len(t)
        out[j] = 1.0 - float(-(p * np.log(p)).sum() / np.log(len(t)))
    return out


def unit_monosemanticity(chunks: Iterable[torch.Tensor | np.ndarray], token_ids: np.ndarray,
                         k: int = TOP_K) -> np.ndarray:
    """Monosemanticity of every unit of `A: [rows, units]` (given in row chunks) whose rows carry `token_ids: [rows]`."""
    values, rows = top_rows(chunks, k)
    token_ids = np.asarray(token_ids)
    tokens = np.where(rows.numpy() >= 0, token_ids[rows.clamp(min=0).numpy()], -1)
    return monosemanticity(values, tokens)


def document_runs(doc: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of a store, the row range [start, stop) of its run: the adjacent rows of the same document at
    consecutive positions (a store holds a split's documents in order, so a run is a whole document unless the
    token budget cut it). A row's context is taken inside its run. doc, pos: [rows]; returns two [rows] int64."""
    doc, pos = np.asarray(doc), np.asarray(pos)
    if len(doc) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(len(doc), bool)
    new[1:] = (doc[1:] != doc[:-1]) | (pos[1:] != pos[:-1] + 1)
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1  # [rows] run index
    stops = np.append(starts[1:], len(doc))
    return starts[run].astype(np.int64), stops[run].astype(np.int64)
