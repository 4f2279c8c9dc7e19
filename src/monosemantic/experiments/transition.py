"""The recovery phase transition: when does unfolding find the true support?

n random unit features in m dimensions (Gaussian, the setting of compressed sensing) and non-negative k-sparse
codes c: is the support of c found again from x = c @ F? The measured curve (`recovery_curve` draws F and codes
and unfolds them) against the reference points of `monosemantic.bounds`: the coherence guarantee, the Welch bound
and the Donoho-Tanner curve, in rho = k / m against delta = m / n.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from monosemantic.bounds import (coherence, coherence_guarantee, dt_rho, psi, random_coherence, tail_moment, toy_coherence,
                                 welch_bound)
from monosemantic.data import check_seed, random_dictionary
from monosemantic.devices import resolve
from monosemantic.errors import InputError
from monosemantic.progress import track
from monosemantic.runs import check_memory, check_new_dir, figure_file, write_run
from monosemantic.sensing import omp
from monosemantic.toy.sampler import probabilities
from monosemantic.toy.train import train_toy

METHODS = ("omp", "l1")
SUPPORT_REL = 1e-3  # a code entry is on when |c_i| > SUPPORT_REL * max_j |c_j| (true magnitudes are >= max / 2)
OMP_TOL = 1e-6  # relative residual at which OMP stops
L1_ALPHA = 1e-7  # lasso penalty for unit-norm x: the basis-pursuit limit (see recovery_curve)


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
                   seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Probability of exact support recovery against k, for one random dictionary F: [n, m] with unit rows.

    For each k: `trials` k-sparse codes (support uniform, magnitudes U[1, 2], non-negative unless positive=False),
    x = c @ F scaled to unit norm (supports do not change), unfolded, and the support of the code
    (|c_i| > 1e-3 max|c|) compared with the true one.
    - omp: `sensing.omp`, all trials of a k in one batch, relative tol 1e-6 and at most k atoms (the setting of
      the coherence guarantee: k steps, each must pick a true atom);
    - l1: the lasso min 0.5 ||x - c F||^2 + alpha ||c||_1 (c >= 0 when positive) at alpha = 1e-7 for unit x: its
      solution tends to basis pursuit's (min ||c||_1 subject to c F = x) as alpha -> 0, and the shrinkage
      alpha (G_SS^-1 sign) it leaves is ~1e-5 of the smallest true coefficient here, far below the support
      threshold. Solved exactly by the LARS homotopy (scikit-learn, on the CPU whatever `device`, which OMP runs
      on); tests check that its supports equal those of an LP solver.
    Returns plain lists: ks, success (probability per k), early (L1 samples whose path stopped early, counted as
    failures), k50 (interpolated 50% point, None if not crossed), dt_k (the Donoho-Tanner k at m/n), mu (coherence
    of F) and welch (the bound for n in m) with the k each guarantees, wall_s (unfolding only).
    """
    import time


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
            codes = omp(X, F, tol=OMP_TOL, k=k, device=device).codes.toarray()
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
           progress: bool = False, device: str | torch.device = "cpu") -> dict:
    """{"omp": [...], "l1": [...]}: a `recovery_curve` for each n = ratio x m (a method with m None is skipped),
    k on a grid around the Donoho-Tanner k (`k_grid`), dictionary and codes seeded by seed + the ratio's index."""
    jobs = [(method, m, m * int(r), trials, fr, seed + i)
            for method, m, trials, fr in (("omp", omp_m, omp_trials, OMP_FRACTIONS),
                                          ("l1", l1_m, l1_trials, L1_FRACTIONS))
            if m is not None for i, r in enumerate(ratios)]
    out = {"omp": [], "l1": []}
    for method, m, n, trials, fr, s in track(jobs, "recovery curves", progress):
        out[method].append(recovery_curve(m, n, k_grid(m, n, fr), trials, method, seed=s, device=device))
    return out


def transition_run(out, m: int = 256, ratios=(2, 4, 8, 16), trials: int = 20, methods=METHODS, seed: int = 0,
                   overwrite: bool = False, progress: bool = False, draw=None, device: str = "cpu"):
    """`monosemantic transition`: the curves at one m for n = ratio x m; writes OUT/config.json, OUT/result.json
    (per method and n: ks, success, k50, the Donoho-Tanner k, mu(F), the Welch bound and both coherence
    guarantees, wall_s) and, with `draw` (result -> matplotlib figure), OUT/transition.png. OMP runs on `device`
    (cpu, cuda, cuda:N, auto). Returns the result."""
    out = check_new_dir(out, overwrite)
    device = resolve(device)
    if m < 1:
        raise InputError(f"m must be positive, got {m}")
    if not ratios or any(int(r) != r or r < 1 for r in ratios):
        raise InputError(f"n/m (the ratios) must be whole numbers >= 1, got {list(ratios)}")
    bad = set(methods) - set(METHODS)
    if bad or not methods:
        raise InputError(f"methods must be among {', '.join(METHODS)}, got {list(methods)}")
    if trials <= 0:
        raise InputError(f"trials must be positive, got {trials}")
    check_seed(seed)
    n = int(max(ratios)) * m
    check_memory(8 * (3 * n * m + 4 * trials * n), f"the transition at m={m} (n up to {n}, {trials} trials)",
                 "lower --m, --n-over-m or --trials")
    t = time.perf_counter()
    res = curves(m if "omp" in methods else None, m if "l1" in methods else None, ratios, trials, trials, seed,
                 progress, device)
    wall = time.perf_counter() - t
    config = {"kind": "transition", "m": m, "ratios": [int(r) for r in ratios], "trials": trials,
              "methods": list(methods), "seed": seed, "device": str(device)}
    res = {**res, "wall_s": wall}
    write_run(out, config, res, {}, overwrite,
              extra_files={"transition.png": figure_file(draw(res))} if draw else None)
    return res


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


# ---------------------------------------------------------------- the report's section

# normal mode: OMP at m = 256 (n = 512..4096); exact L1 costs ~0.1-1.7 s per sample at m = 256 (LARS
# homotopy and LP solvers alike), so its curves use m = 64 with the same deltas m/n
FULL = dict(omp_m=256, l1_m=64, ratios=(2, 4, 8, 16), omp_trials=100, l1_trials=50, toy_steps=3000)
QUICK = dict(omp_m=64, l1_m=32, ratios=(2, 8), omp_trials=20, l1_trials=12, toy_steps=300)
TOYS = ((20, 5), (40, 10), (80, 20))  # (n, m) toy ReLU-output models, uniform importance
TOY_SPARSITIES = (0.7, 0.9, 0.99)  # 0.7: antipodal pairs (D* = 1/2); sparser: more superposition


def toy_models(steps: int, progress: bool) -> list[dict]:
    out = []
    for n, m in TOYS:
        run = train_toy("relu-output", n, m, probabilities(list(TOY_SPARSITIES), n), torch.ones(n), steps=steps,
                        seeds=1, progress=progress, eval_batch=1024)
        W = run.model.W.detach()[run.kept]  # [configs, m, n]
        out += [{"n": n, "S": s, **toy_coherence(W[c])} for c, s in enumerate(TOY_SPARSITIES)]
    return out


def demo(quick: bool, progress: bool) -> dict:
    """The report's transition results: recovery curves and toy models' coherence, with their timings."""
    cfg = QUICK if quick else FULL
    t = time.perf_counter()
    found = curves(cfg["omp_m"], cfg["l1_m"], cfg["ratios"], cfg["omp_trials"], cfg["l1_trials"], progress=progress)
    t_rec = time.perf_counter() - t
    t = time.perf_counter()
    toys = toy_models(cfg["toy_steps"], progress)
    return {"cfg": cfg, "curves": found, "toys": toys, "curves_s": t_rec, "toys_s": time.perf_counter() - t}
