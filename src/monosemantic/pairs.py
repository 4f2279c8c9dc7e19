"""The cosine pitfall: how well the cosine of two activations tells which features they share.

Over every pair of rows, the cosine of the activations is set against the Jaccard overlap of their feature
supports (true supports, unfolded ones, or a dictionary's codes). In superposition the two can disagree: a high
cosine with no feature in common, or a low cosine between rows that share most of their features. The thresholds
below define those two kinds of pair everywhere in the project.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

HIGH_COS = 0.8  # a "high cosine" pair
LOW_COS = 0.3  # a "low cosine" pair
MOSTLY_SHARED = 0.5  # supports "mostly shared": Jaccard overlap at least this


def all_pairs(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): every pair of `rows` rows once, a < b: [pairs] each."""
    return np.triu_indices(rows, k=1)


def cosines(H: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(H[a], H[b]) for the pairs: H: [rows, d] -> [pairs] (zero rows give 0)."""
    H = np.asarray(H, np.float64)
    H = H / np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-30)
    return (H @ H.T)[a, b]


def overlaps(on, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shared, jaccard) of the supports `on: [rows, units]` (bool, dense or sparse) for the pairs: [pairs] each."""
    on = sp.csr_matrix(on, dtype=np.float64) if sp.issparse(on) else np.asarray(on, np.float64)
    inter = on @ on.T
    inter = np.asarray(inter.todense() if sp.issparse(inter) else inter)[a, b]
    size = np.asarray(on.sum(1)).ravel()
    return inter, inter / np.maximum(size[a] + size[b] - inter, 1)


def pitfall(cos: np.ndarray, shared: np.ndarray, jaccard: np.ndarray) -> dict:
    """Counts of the misleading pairs, and the index of the most striking pair of each kind (None when none):
    the highest cosine among pairs sharing no feature, the lowest among pairs mostly sharing."""
    disjoint, mostly = shared == 0, jaccard >= MOSTLY_SHARED
    worst = {}
    for kind, pool, best in (("high cosine, nothing shared", np.flatnonzero(disjoint), np.argmax),
                             ("low cosine, mostly shared", np.flatnonzero(mostly), np.argmin)):
        worst[kind] = int(pool[best(cos[pool])]) if len(pool) else None
    return {"high_cos_no_shared": int(((cos > HIGH_COS) & disjoint).sum()),
            "low_cos_mostly_shared": int(((cos < LOW_COS) & mostly).sum()),
            "disjoint": int(disjoint.sum()), "mostly_shared": int(mostly.sum()), "high_cos": int((cos > HIGH_COS).sum()),
            "thresholds": {"high_cos": HIGH_COS, "low_cos": LOW_COS, "mostly_shared_jaccard": MOSTLY_SHARED},
            "worst": worst}
