"""Compressed-sensing bounds: coherence and the Welch bound, the coherence guarantee, and the Donoho-Tanner curve.

- mutual coherence mu = max_{i != j} |cos(F_i, F_j)| guarantees exact recovery by both OMP and L1 for
  k < (1 + 1/mu) / 2 (Donoho & Elad 2003, Tropp 2004); the Welch bound mu >= sqrt((n - m) / (m (n - 1))) says how
  good that guarantee can ever be for n vectors in m dimensions (a worst case over supports: far below where
  recovery actually fails for random supports);
- the Donoho-Tanner weak threshold: for random F and a random support, exact L1 minimisation recovers almost every
  k-sparse code below rho(delta) and almost none above, as m, n -> infinity. Computed here from the statistical
  dimension of the descent cone (Amelunxen, Lotz, McCoy & Tropp 2014, "Living on the edge", who show it coincides
  with Donoho-Tanner's curves): a k-sparse non-negative vector in n dims is recovered from m = n psi(k / n)
  measurements, psi(r) = inf_{tau >= 0} r (1 + tau^2) + (1 - r) E[(g - tau)_+^2], g ~ N(0, 1) (one-sided, the
  simplex case: off the support the code must stay >= 0); signed codes (the crosspolytope) have 2 E[(g - tau)_+^2].

`toy_coherence` sets a trained toy model's represented columns against the Welch bound.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from monosemantic.errors import InputError
from monosemantic.measures import ANTIPODAL_COS, REPRESENTED


def welch_bound(n: int, m: int) -> float:
    """The least coherence n unit vectors in m dimensions can have: sqrt((n - m) / (m (n - 1))); 0 when n <= m."""
    if n < 1 or m < 1:
        raise InputError(f"n and m must be positive, got n={n}, m={m}")
    return 0.0 if n <= m else math.sqrt((n - m) / (m * (n - 1)))


def coherence(F, exclude: np.ndarray | None = None) -> float:
    """max |cos(F_i, F_j)| over distinct rows of F: [n, d] (non-zero rows); 0 for a single row.

    exclude: optional bool [n, n] of pairs to leave out (e.g. antipodal partners).
    """
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[0] == 0:
        raise InputError(f"need F: [n, d] with n >= 1, got shape {list(F.shape)}")
    norms = np.linalg.norm(F, axis=1)
    if (norms <= 1e-12).any():
        raise InputError("coherence needs non-zero rows")
    U = F / norms[:, None]
    cos = np.abs(U @ U.T)  # [n, n]
    np.fill_diagonal(cos, 0.0)
    if exclude is not None:
        cos[exclude] = 0.0
    return float(cos.max()) if len(F) > 1 else 0.0


def random_coherence(n: int, m: int, draws: int = 50, seed: int = 0) -> float:
    """Median coherence of n Gaussian random directions in m dims over `draws` draws: what no training gives."""
    rng = np.random.default_rng(seed)
    return float(np.median([coherence(rng.standard_normal((n, m))) for _ in range(draws)])) if n > 1 else 0.0


def coherence_guarantee(mu: float) -> float:
    """k below (1 + 1/mu) / 2 guarantees exact recovery by OMP and by L1 (inf for mu = 0)."""
    if not 0 <= mu <= 1:
        raise InputError(f"coherence must lie in [0, 1], got {mu}")
    return math.inf if mu == 0 else (1 + 1 / mu) / 2


# ---------------------------------------------------------------- Donoho-Tanner curve (statistical dimension)


def _phi(t: float) -> float:
    return math.exp(-t * t / 2) / math.sqrt(2 * math.pi)


def tail_moment(tau: float) -> float:
    """E[(g - tau)_+^2] for g ~ N(0, 1): (1 + tau^2) Q(tau) - tau phi(tau)."""
    return (1 + tau * tau) * ndtr(-tau) - tau * _phi(tau)


def psi(r: float, signed: bool = False) -> float:
    """Statistical dimension / n of the L1 descent cone at a vector with r n non-zeros (non-negative unless signed).

    The infimum over tau is where the derivative vanishes: r tau = sides (1 - r) E[(g - tau)_+], a root that
    bisection finds (left side increasing, right side decreasing in tau).
    """
    if not 0 <= r <= 1:
        raise InputError(f"sparsity fraction r = k/n must lie in [0, 1], got {r}")
    if r in (0, 1):
        return float(r)
    sides = 2 if signed else 1
    tau = brentq(lambda t: r * t - sides * (1 - r) * (_phi(t) - t * ndtr(-t)), 0.0, 40.0, xtol=1e-14)
    return r * (1 + tau * tau) + sides * (1 - r) * tail_moment(tau)


def dt_rho(delta: float, signed: bool = False) -> float:
    """Donoho-Tanner weak threshold rho = k/m at delta = m/n (simplex curve; crosspolytope when signed)."""
    if not 0 < delta <= 1:
        raise InputError(f"delta = m/n must lie in (0, 1], got {delta}")
    if delta == 1:
        return 1.0
    # psi(r) >= r, so the root r = k/n lies in (0, delta]
    r = brentq(lambda r: psi(r, signed) - delta, delta * 1e-12, delta, xtol=1e-16, rtol=1e-12)
    return r / delta


def toy_coherence(W) -> dict:
    """Coherence of one toy model's represented columns. W: [m, n] (column i = feature i's direction).

    Represented: norm > measures.REPRESENTED. An antipodal pair (cosine < measures.ANTIPODAL_COS, the geometry
    label's definition) has |cos| ~ 1 by design, so the coherence is also given with each feature's antipodal
    partners left out. welch: the bound for n_represented unit vectors in m dims; random: the median coherence of as
    many random directions (`random_coherence`).
    """
    W = np.asarray(W, dtype=np.float64)
    m = W.shape[0]
    keep = np.linalg.norm(W, axis=0) > REPRESENTED
    cols = W[:, keep].T  # [represented, m]
    r = len(cols)
    if r < 2:
        return {"m": m, "represented": r, "coherence": 0.0, "coherence_no_antipodal": 0.0,
                "antipodal_pairs": 0, "welch": welch_bound(max(r, 1), m), "random": 0.0}
    U = cols / np.linalg.norm(cols, axis=1, keepdims=True)
    anti = (U @ U.T) < ANTIPODAL_COS  # [r, r]
    return {"m": m, "represented": r, "coherence": coherence(cols),
            "coherence_no_antipodal": coherence(cols, exclude=anti), "antipodal_pairs": int(anti.sum() // 2),
            "welch": welch_bound(r, m), "random": random_coherence(r, m)}
