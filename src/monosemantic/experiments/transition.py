"""The recovery phase transition (issue 7, part 4): when does unfolding find the true support?

n random unit features in m dimensions (Gaussian, the setting of compressed sensing) and non-negative k-sparse
codes c: is the support of c found again from x = c @ F? Three reference points, all in rho = k / m against
delta = m / n:

- mutual coherence mu = max_{i != j} |cos(F_i, F_j)| guarantees exact recovery by both OMP and L1 for
  k < (1 + 1/mu) / 2 (Donoho & Elad 2003, Tropp 2004); the Welch bound mu >= sqrt((n - m) / (m (n - 1))) says how
  good that guarantee can ever be for n vectors in m dimensions (a worst case over supports: far below where
  recovery actually fails for random supports);
- the Donoho-Tanner weak threshold: for random F and a random support, exact L1 minimisation recovers almost every
  k-sparse code below rho(delta) and almost none above, as m, n -> infinity. Computed here from the statistical
  dimension of the descent cone (Amelunxen, Lotz, McCoy & Tropp 2014, "Living on the edge", who show it coincides
  with Donoho-Tanner's curves): a k-sparse non-negative vector in n dims is recovered from m = n psi(k / n)
  measurements, psi(r) = inf_{tau >= 0} r (1 + tau^2) + (1 - r) E[(g - tau)_+^2], g ~ N(0, 1) (one-sided, the
  simplex case: off the support the code must stay >= 0); signed codes (the crosspolytope) have 2 E[(g - tau)_+^2];
- the measured curve: `recovery_curve` draws F and codes and unfolds them.

Trained toy models sit against the Welch bound in `toy_coherence`.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from monosemantic.errors import InputError
from monosemantic.progress import track

METHODS = ("omp", "l1")
SUPPORT_REL = 1e-3  # a code entry is on when |c_i| > SUPPORT_REL * max_j |c_j| (true magnitudes are >= max / 2)
OMP_TOL = 1e-6  # relative residual at which OMP stops
L1_ALPHA = 1e-7  # lasso penalty for unit-norm x: the basis-pursuit limit (see recovery_curve)


# ---------------------------------------------------------------- coherence and the Welch bound


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


# ---------------------------------------------------------------- measured recovery


def _check(m: int, n: int, ks, trials: int, method: str) -> np.ndarray:
    ks = np.asarray(ks)
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if m < 1 or n < m:
        raise InputError(f"need 1 <= m <= n (features n in m dimensions), got m={m}, n={n}")
    if trials <= 0:
        raise InputError(f"trials must be positive, got {trials}")
    if ks.ndim != 1 or len(ks) == 0 or ks.dtype.kind not in "iu":
        raise InputError("ks must be a non-empty list of integers")
    if (ks < 1).any() or (ks > m).any():
        raise InputError(f"every k must lie in [1, m={m}], got {ks.min()}..{ks.max()}")
    return ks


def _draw_codes(rng: np.random.Generator, n: int, k: int, trials: int, positive: bool) -> np.ndarray:
    """C: [trials, n], k non-zeros per row, support uniform, magnitudes U[1, 2] (random signs unless positive)."""
    C = np.zeros((trials, n))
    rows = np.repeat(np.arange(trials), k)
    cols = np.argsort(rng.random((trials, n)), axis=1)[:, :k].ravel()  # k distinct atoms per row
    vals = rng.uniform(1.0, 2.0, trials * k)
    if not positive:
        vals *= rng.choice([-1.0, 1.0], trials * k)
    C[rows, cols] = vals
    return C


def _l1_codes(X: np.ndarray, F: np.ndarray, G: np.ndarray, positive: bool) -> tuple[np.ndarray, int]:
    """Lasso codes at alpha = L1_ALPHA for unit-norm rows of X: [b, d] (the basis-pursuit limit), by homotopy.

    scikit-learn's LARS-lasso path is exact (it follows the solution as alpha falls); sensing.lasso's active set,
    started from OMP supports, does not converge at such small alpha near the transition (m = 256, n = 512, k = 143:
    20 of 20 samples unconverged; basis pursuit by an LP solver recovers 17 of 20 at k = 140).
    Returns codes [b, n] and how many samples stopped early (LARS ran out of steps or hit degeneracy).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lars_path_gram

    out = np.zeros((len(X), len(F)))
    early = 0
    for i, x in enumerate(X):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always", ConvergenceWarning)
            alphas, _, coef = lars_path_gram(F @ x, G, n_samples=1, alpha_min=L1_ALPHA, method="lasso",
                                             positive=positive, return_path=False)
        early += int(alphas[-1] > L1_ALPHA * 1.0001 or any(issubclass(x.category, ConvergenceWarning) for x in w))
        out[i] = coef.ravel()
    return out, early


def recovery_curve(m: int, n: int, ks, trials: int, method: str = "omp", positive: bool = True,
                   seed: int = 0) -> dict:
    """Probability of exact support recovery against k, for one random dictionary F: [n, m] with unit rows.

    For each k: `trials` k-sparse codes (support uniform, magnitudes U[1, 2], non-negative unless positive=False),
    x = c @ F scaled to unit norm (supports do not change), unfolded, and the support of the code
    (|c_i| > 1e-3 max|c|) compared with the true one.
    - omp: `sensing.omp`, all trials of a k in one batch, relative tol 1e-6 and at most k atoms (the setting of
      the coherence guarantee: k steps, each must pick a true atom);
    - l1: the lasso min 0.5 ||x - c F||^2 + alpha ||c||_1 (c >= 0 when positive) at alpha = 1e-7 for unit x: its
      solution tends to basis pursuit's (min ||c||_1 subject to c F = x) as alpha -> 0, and the shrinkage
      alpha (G_SS^-1 sign) it leaves is ~1e-5 of the smallest true coefficient here, far below the support
      threshold. Solved exactly by the LARS homotopy; tests check that its supports equal those of an LP solver.
    Returns plain lists: ks, success (probability per k), early (L1 samples whose path stopped early, counted as
    failures), k50 (interpolated 50% point, None if not crossed), dt_k (the Donoho-Tanner k at m/n), mu (coherence
    of F) and welch (the bound for n in m) with the k each guarantees, wall_s (unfolding only).
    """
    import time

    from monosemantic.data import random_dictionary
    from monosemantic.sensing import omp

    ks = _check(m, n, ks, trials, method)
    rng = np.random.default_rng(seed)
    F = random_dictionary(rng, n, m).astype(np.float64)  # [n, m] unit rows
    G = F @ F.T if method == "l1" else None  # [n, n], shared by every sample's homotopy
    success, early, wall = [], 0, 0.0
    for k in ks.tolist():
        C = _draw_codes(rng, n, k, trials, positive)  # [trials, n]
        X = C @ F
        X /= np.linalg.norm(X, axis=1, keepdims=True)  # [trials, m]
        t = time.perf_counter()
        if method == "omp":
            codes = omp(X, F, tol=OMP_TOL, k=k).codes.toarray()
        else:
            codes, e = _l1_codes(X, F, G, positive)
            early += e
        wall += time.perf_counter() - t
        success.append(float((support(codes) == (C != 0)).all(axis=1).mean()))
    mu, welch = coherence(F), welch_bound(n, m)
    return {"m": m, "n": n, "method": method, "positive": positive, "trials": trials, "ks": ks.tolist(),
            "success": success, "early": early, "k50": transition_k(ks, success), "dt_k": dt_rho(m / n) * m,
            "mu": mu, "welch": welch, "k_guaranteed_mu": coherence_guarantee(mu),
            "k_guaranteed_welch": coherence_guarantee(welch), "wall_s": wall}


OMP_FRACTIONS = (0.05, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 1.0)  # of the DT k (OMP fails earlier)
L1_FRACTIONS = (0.6, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)


def k_grid(m: int, n: int, fractions) -> list[int]:
    """Distinct k in [1, m] at the given fractions of the Donoho-Tanner k = rho(m/n) m."""
    k_dt = dt_rho(m / n) * m
    return sorted({min(m, max(1, round(k_dt * f))) for f in fractions})


def curves(omp_m: int | None, l1_m: int | None, ratios, omp_trials: int, l1_trials: int, seed: int = 0,
           progress: bool = False) -> dict:
    """{"omp": [...], "l1": [...]}: a `recovery_curve` for each n = ratio x m (a method with m None is skipped),
    k on a grid around the Donoho-Tanner k (`k_grid`), dictionary and codes seeded by seed + the ratio's index."""
    jobs = [(method, m, m * int(r), trials, fr, seed + i)
            for method, m, trials, fr in (("omp", omp_m, omp_trials, OMP_FRACTIONS),
                                          ("l1", l1_m, l1_trials, L1_FRACTIONS))
            if m is not None for i, r in enumerate(ratios)]
    out = {"omp": [], "l1": []}
    for method, m, n, trials, fr, s in track(jobs, "recovery curves", progress):
        out[method].append(recovery_curve(m, n, k_grid(m, n, fr), trials, method, seed=s))
    return out


def run_to_dir(out, m: int = 256, ratios=(2, 4, 8, 16), trials: int = 20, methods=METHODS, seed: int = 0,
               overwrite: bool = False, progress: bool = False):
    """`monosemantic transition`: the curves at one m for n = ratio x m; writes OUT/config.json, OUT/result.json
    (per method and n: ks, success, k50, the Donoho-Tanner k, mu(F), the Welch bound and both coherence
    guarantees, wall_s) and OUT/transition.png."""
    import time

    from monosemantic.runs import check_new_dir, figure_file, write_run

    out = check_new_dir(out, overwrite)
    if m < 1:
        raise InputError(f"m must be positive, got {m}")
    if not ratios or any(int(r) != r or r < 1 for r in ratios):
        raise InputError(f"ratios n/m must be whole numbers >= 1, got {list(ratios)}")
    bad = set(methods) - set(METHODS)
    if bad or not methods:
        raise InputError(f"methods must be among {', '.join(METHODS)}, got {list(methods)}")
    if trials <= 0:
        raise InputError(f"trials must be positive, got {trials}")
    t = time.perf_counter()
    res = curves(m if "omp" in methods else None, m if "l1" in methods else None, ratios, trials, trials, seed,
                 progress)
    wall = time.perf_counter() - t
    config = {"kind": "transition", "m": m, "ratios": [int(r) for r in ratios], "trials": trials,
              "methods": list(methods), "seed": seed}
    from monosemantic.report.figures.transition import plot

    return write_run(out, config, {**res, "wall_s": wall}, {}, overwrite,
                     extra_files={"transition.png": figure_file(plot(res))})


def support(codes) -> np.ndarray:
    """Bool [samples, atoms]: |c_i| > SUPPORT_REL max_j |c_j| (codes: dense or scipy sparse [samples, atoms])."""
    mag = np.abs(codes.toarray() if hasattr(codes, "toarray") else np.asarray(codes))
    return mag > SUPPORT_REL * mag.max(axis=1, keepdims=True)


def transition_k(ks, success) -> float | None:
    """k where the success probability first falls through 1/2 (linear interpolation); None if it never does."""
    ks, p = np.asarray(ks, dtype=float), np.asarray(success, dtype=float)
    for i in range(1, len(ks)):
        if p[i - 1] >= 0.5 > p[i]:
            return float(ks[i - 1] + (p[i - 1] - 0.5) / (p[i - 1] - p[i]) * (ks[i] - ks[i - 1]))
    return None


# ---------------------------------------------------------------- trained toy models against the Welch bound


def toy_coherence(W) -> dict:
    """Coherence of one toy model's represented columns. W: [m, n] (column i = feature i's direction).

    Represented: norm > measures.REPRESENTED. An antipodal pair (cosine < measures.ANTIPODAL_COS, the geometry
    label's definition) has |cos| ~ 1 by design, so the coherence is also given with each feature's antipodal
    partners left out. welch: the bound for n_represented unit vectors in m dims; random: the median coherence of as
    many random directions (`random_coherence`).
    """
    from monosemantic.measures import ANTIPODAL_COS, REPRESENTED

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
