"""Reference definitions the peer baselines use, written out plainly so the checks need nothing outside the repository.

The data recipe is that of the peers' `make_synthetic.py` (same generator, same order of draws); the metrics are
those every peer is scored with (signed cosines, a 0.9 threshold, scipy's one-to-one matching). They are kept
independent of `monosemantic` on purpose: a test compares the package against them.
"""
import numpy as np
from scipy.optimize import linear_sum_assignment


def make_uniform(n_features, d, k, n, seed, chunk=50_000):
    """X [n, d], D [n_features, d] (unit rows), and the true codes as CSR pieces (data, indices, indptr)."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_features, d)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    p = k / n_features
    X = np.empty((n, d), dtype=np.float32)
    data, indices, indptr, nnz = [], [], [np.zeros(1, np.int64)], 0
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        on = rng.random((e - s, n_features)) < p  # [b, n_features]
        codes = np.where(on, rng.random((e - s, n_features), dtype=np.float32), np.float32(0))
        X[s:e] = codes @ D
        r, c = np.nonzero(codes)
        data.append(codes[r, c])
        indices.append(c.astype(np.int32))
        counts = np.bincount(r, minlength=e - s)
        indptr.append(nnz + np.cumsum(counts))
        nnz += counts.sum()
    return X, D, np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)


def dictionary_metrics(D_true, atoms, thresh=0.9):
    """D_true [n_true, d], atoms [n_learned, d] -> mmcs, recovered, mcc_hungarian (signed cosines)."""
    A = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-12)
    T = D_true / np.linalg.norm(D_true, axis=1, keepdims=True)
    cos = T.astype(np.float64) @ A.T.astype(np.float64)  # [n_true, n_learned]
    best = cos.max(axis=1)
    r, c = linear_sum_assignment(-cos)
    return dict(mmcs=float(best.mean()), recovered=float((best > thresh).mean()),
                mcc_hungarian=float(cos[r, c].sum() / len(D_true)))


def recon_metrics(X, X_hat, codes):
    """X, X_hat [n, d]; codes [n, latents] dense."""
    X = X.astype(np.float64)
    err = X - X_hat.astype(np.float64)
    active = codes != 0
    return dict(mse=float((err ** 2).mean()), fvu=float((err ** 2).sum() / ((X - X.mean(0)) ** 2).sum()),
                l0=float(active.sum(1).mean()), dead=int((~active.any(0)).sum()))


def code_recovery(codes_true, codes_hat):
    """Support precision, recall, F1 and relative code error of dense codes [n, features] against the truth."""
    t, h = codes_true != 0, codes_hat != 0
    tp = float((t & h).sum())
    prec, rec = tp / max(h.sum(), 1), tp / max(t.sum(), 1)
    return dict(code_rel_err=float(np.linalg.norm(codes_hat - codes_true) / np.linalg.norm(codes_true)),
                support_precision=prec, support_recall=rec, support_f1=2 * prec * rec / max(prec + rec, 1e-12))
