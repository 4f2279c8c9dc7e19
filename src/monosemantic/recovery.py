"""Scores of a learned dictionary and its codes against the ground truth (docs/dictionary-learning.md).

Arguments are plain arrays (numpy, torch, or scipy sparse for codes); results are floats.
Dictionaries are rows: true features `F: [n_features, d]`, learned atoms `A: [n_atoms, d]` (both are
normalised here). Cosines are signed: the codes of SAEs and of non-negative dictionary learning are
non-negative, so an atom pointing against a feature does not recover it. Sign-free methods (PCA,
FastICA) pass `absolute=True`, which scores |cos| and flips the matched codes' signs.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import norm as sparse_norm

THRESHOLD = 0.9  # a true feature is recovered when some atom has cosine above this
_EPS = 1e-12


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch, dense or sparse
        import torch

        a = a.detach().cpu()
        a = (a if a.layout == torch.strided else a.to_dense()).numpy()
    if sp.issparse(a):
        a = a.toarray()
    return np.asarray(a, dtype=np.float64)


def _csr(a) -> sp.csr_matrix:
    if sp.issparse(a):
        return sp.csr_matrix(a, dtype=np.float64)
    if hasattr(a, "detach"):
        import torch

        a = a.detach().cpu()
        if a.layout == torch.sparse_csr:
            return sp.csr_matrix((a.values().double().numpy(), a.col_indices().numpy(), a.crow_indices().numpy()),
                                 shape=tuple(a.shape))
        if a.layout != torch.strided:
            a = a.to_dense()
    return sp.csr_matrix(_np(a))


def unit_rows(A) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero): [n, d] float64."""
    A = _np(A)
    if A.ndim != 2:
        raise ValueError(f"a dictionary must be [n, d], got shape {list(A.shape)}")
    return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), _EPS)


def cosines(F, A, absolute: bool = False) -> np.ndarray:
    """cos(F_i, A_j): [n_features, n_atoms]."""
    F, A = unit_rows(F), unit_rows(A)
    if F.shape[1] != A.shape[1]:
        raise ValueError(f"features have d={F.shape[1]} but atoms have d={A.shape[1]}")
    cos = F @ A.T
    return np.abs(cos) if absolute else cos


def best_cosines(F, A, absolute: bool = False) -> np.ndarray:
    """Each true feature's best cosine with any atom: [n_features] (the histogram of the report)."""
    return cosines(F, A, absolute).max(axis=1)


def recovered(F, A, absolute: bool = False, threshold: float = THRESHOLD) -> float:
    """Share of the true features whose best cosine with any atom exceeds threshold (no matching needed)."""
    return float((best_cosines(F, A, absolute) > threshold).mean())


def _assign(cos: np.ndarray, absolute: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hungarian matching of the signed cosines cos: [n_features, n_atoms]; see `match`."""
    rows, cols = linear_sum_assignment(-(np.abs(cos) if absolute else cos))
    return rows, cols, cos[rows, cols]


def match(F, A, absolute: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of features to atoms (Hungarian): (feature idx, atom idx, cosine).

    With fewer atoms than features only n_atoms features are matched. The cosine is signed even when
    `absolute` (which only lets the matching ignore signs).
    """
    return _assign(cosines(F, A), absolute)


def _dictionary_scores(F, A, absolute: bool, threshold: float) -> tuple[dict[str, float], tuple]:
    """`dictionary_scores` and the matching (as `match` returns it) it was computed from."""
    cos = cosines(F, A)
    matching = _assign(cos, absolute)
    mcos = matching[2]
    if absolute:
        cos, mcos = np.abs(cos), np.abs(mcos)
    best = cos.max(axis=1)
    return {"mmcs": float(best.mean()), "recovered": float((best > threshold).mean()),
            "mcc_hungarian": float(mcos.sum() / len(cos))}, matching


def dictionary_scores(F, A, absolute: bool = False, threshold: float = THRESHOLD) -> dict[str, float]:
    """mmcs (mean best cosine), recovered (share with best cosine > threshold), mcc_hungarian."""
    return _dictionary_scores(F, A, absolute, threshold)[0]


def fvu(X, X_hat) -> float:
    """Fraction of variance unexplained: sum (x - x_hat)^2 / sum (x - mean x)^2."""
    X, X_hat = _np(X), _np(X_hat)
    return float(((X - X_hat) ** 2).sum() / max(((X - X.mean(0)) ** 2).sum(), _EPS))


def l0(codes) -> float:
    """Mean number of non-zero latents per sample."""
    C = _csr(codes)
    C.eliminate_zeros()
    return float(C.getnnz(axis=1).mean())


def dead_latents(codes) -> int:
    """Latents that are zero on every sample given."""
    C = _csr(codes)
    C.eliminate_zeros()
    return int((C.getnnz(axis=0) == 0).sum())


def reconstruction_scores(X, X_hat, codes) -> dict[str, float]:
    """mse (mean over samples and dims), fvu, l0, dead."""
    X, X_hat = _np(X), _np(X_hat)
    return {"mse": float(((X - X_hat) ** 2).mean()), "fvu": fvu(X, X_hat), "l0": l0(codes),
            "dead": dead_latents(codes)}


def matched_codes(codes, F, A, absolute: bool = False, matching=None) -> sp.csr_matrix:
    """Learned codes [samples, n_atoms] rearranged into the true features' columns [samples, n_features].

    Column i holds the code of the atom matched to feature i (Hungarian; scaled by the atom's norm so that
    code x unit atom is what it reconstructs; sign flipped for a negatively matched atom when `absolute`);
    unmatched features get zero. `matching`: match(F, A, absolute) when the caller already has it.
    """
    C = _csr(codes)
    A = _np(A)
    rows, cols, cos = match(F, A, absolute) if matching is None else matching
    scale = np.linalg.norm(A[cols], axis=1)
    if absolute:
        scale = scale * np.sign(cos)
    P = sp.csr_matrix((scale, (cols, rows)), shape=(A.shape[0], _np(F).shape[0]))  # [n_atoms, n_features]
    out = (C @ P).tocsr()
    out.eliminate_zeros()
    return out


def code_scores(codes_true, codes_hat, F=None, A=None, absolute: bool = False, matching=None) -> dict[str, float]:
    """Support precision / recall / F1 and relative code error ||C_hat - C||_F / ||C||_F.

    With F and A the learned codes are first matched to the true features (`matched_codes`; `matching`:
    match(F, A, absolute) when the caller already has it); without them the columns are taken as already
    aligned (coding with the true dictionary).
    """
    T = _csr(codes_true)
    H = (matched_codes(codes_hat, F, A, absolute, matching) if F is not None and A is not None
         else _csr(codes_hat))
    if T.shape != H.shape:
        raise ValueError(f"true codes are {list(T.shape)} but learned codes are {list(H.shape)}")
    T.eliminate_zeros()
    H.eliminate_zeros()
    t, h = (T != 0).astype(np.float64), (H != 0).astype(np.float64)
    tp = float(t.multiply(h).sum())
    prec = tp / max(float(h.sum()), 1.0)
    rec = tp / max(float(t.sum()), 1.0)
    rel = float(sparse_norm(H - T) / max(sparse_norm(T), _EPS))
    return {"code_rel_err": rel, "support_precision": prec, "support_recall": rec,
            "support_f1": 2 * prec * rec / max(prec + rec, _EPS)}


def seed_overlap(A1, A2, absolute: bool = False, threshold: float = THRESHOLD) -> float:
    """Share of the atoms of A1 (one seed) whose best cosine with an atom of A2 (another seed) exceeds threshold."""
    return recovered(A1, A2, absolute, threshold)


def all_scores(X, X_hat, codes, F=None, A=None, codes_true=None, absolute: bool = False) -> dict[str, float]:
    """Every score that the given arguments allow: reconstruction, dictionary (F, A), codes (codes_true)."""
    out = reconstruction_scores(X, X_hat, codes)
    if F is not None and A is not None:
        scores, matching = _dictionary_scores(F, A, absolute, THRESHOLD)
        out.update(scores)
        if codes_true is not None:
            out.update(code_scores(codes_true, codes, F, A, absolute, matching))
    return out
