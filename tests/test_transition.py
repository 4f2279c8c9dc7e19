"""The recovery phase transition: Welch bound, coherence, the Donoho-Tanner curve, measured recovery."""
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq, linprog, minimize_scalar

from monosemantic.errors import InputError
import monosemantic.experiments.transition as T
from monosemantic.data import random_dictionary


# ---------------------------------------------------------------- Welch bound and coherence


def test_equiangular_frames_meet_the_welch_bound():
    # three unit vectors at 120 degrees in R^2 (the Mercedes frame): |cos| = 1/2 = sqrt((3-2)/(2*2))
    a = np.deg2rad([90, 210, 330])
    F = np.stack([np.cos(a), np.sin(a)], 1)  # [3, 2]
    assert T.coherence(F) == pytest.approx(0.5) and T.welch_bound(3, 2) == pytest.approx(0.5)
    # the regular simplex, m + 1 vectors in m dims: |cos| = 1/m, the bound with equality
    m = 6
    S = np.eye(m + 1) - 1 / (m + 1)  # centred basis: m+1 vectors spanning an m-dim subspace of R^(m+1)
    Q, _ = np.linalg.qr(S[:, :m])
    F = S @ Q  # [m+1, m] coordinates in that subspace
    assert T.coherence(F) == pytest.approx(1 / m) and T.welch_bound(m + 1, m) == pytest.approx(1 / m)


def test_random_frames_exceed_the_welch_bound_and_small_n_has_none():
    rng = np.random.default_rng(0)
    for n, m in ((64, 16), (512, 256), (100, 99)):
        assert T.coherence(random_dictionary(rng, n, m)) > T.welch_bound(n, m) > 0
    assert T.welch_bound(512, 256) == pytest.approx(0.0443, abs=1e-4)  # sqrt((n - m) / (m (n - 1))) by hand
    assert T.welch_bound(5, 5) == 0 and T.welch_bound(3, 7) == 0


def test_coherence_of_a_known_matrix_and_the_guarantee():
    F = np.array([[1.0, 0.0], [2.0, 2.0], [0.0, -3.0]])  # cosines: 1/sqrt2, 0, -1/sqrt2 (scale-free, sign-free)
    assert T.coherence(F) == pytest.approx(1 / math.sqrt(2))
    assert T.coherence(F, exclude=np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)) == 0.0
    assert T.coherence_guarantee(0.5) == 1.5 and T.coherence_guarantee(1 / 3) == pytest.approx(2.0)
    assert T.coherence_guarantee(0.0) == math.inf


# ---------------------------------------------------------------- the Donoho-Tanner curve


def _psi_by_integration(r: float, sides: int) -> float:
    """psi(r) with E[(g - tau)_+^2] by numerical integration and the infimum by a scalar minimiser (independent)."""
    def moment(tau):
        return quad(lambda g: (g - tau) ** 2 * math.exp(-g * g / 2) / math.sqrt(2 * math.pi), tau, math.inf)[0]

    res = minimize_scalar(lambda t: r * (1 + t * t) + sides * (1 - r) * moment(t), bounds=(0, 10), method="bounded",
                          options={"xatol": 1e-10})
    return res.fun


@pytest.mark.parametrize("signed", [False, True])
def test_dt_curve_matches_numerical_integration(signed):
    for r in (0.01, 0.1, 0.3, 0.6):
        assert T.psi(r, signed) == pytest.approx(_psi_by_integration(r, 2 if signed else 1), abs=1e-7)
    for delta in (0.1, 0.5):
        r = brentq(lambda r: _psi_by_integration(r, 2 if signed else 1) - delta, 1e-6, delta, xtol=1e-9)
        assert T.dt_rho(delta, signed) == pytest.approx(r / delta, abs=1e-5)


def test_dt_curve_published_anchors_monotone_and_limits():
    # Donoho & Tanner, PNAS 102(27) 2005, abstract: for most n x 2n systems, non-negative solutions with fewer
    # non-zeros than "roughly half the number of equations" are found by LP: rho+(1/2) a little above 1/2 (0.558)
    assert 0.5 < T.dt_rho(0.5) < 0.6
    # the crosspolytope (signed) curve lies below the simplex curve: signs are information the LP must find
    deltas = np.linspace(0.02, 0.98, 25)
    plus = [T.dt_rho(d) for d in deltas]
    pm = [T.dt_rho(d, signed=True) for d in deltas]
    assert all(a > b for a, b in zip(plus, pm))
    assert all(np.diff(plus) > 0) and all(np.diff(pm) > 0)
    assert T.dt_rho(1e-3) < 0.1 and T.dt_rho(0.999) > 0.99 and T.dt_rho(1.0) == 1.0
    # Donoho & Tanner, "Precise undersampling theorems", Proc. IEEE 98(6) 2010: m ~ 2 k log(n/m) for k << n, i.e.
    # rho 2 log(1/delta) -> 1; the approach is slow (log log corrections), so at delta = 1e-10 within 10%
    for signed in (False, True):
        assert 1.0 < T.dt_rho(1e-10, signed) * 2 * math.log(1e10) < 1.1
    v = [T.dt_rho(d) * 2 * math.log(1 / d) for d in (1e-4, 1e-7, 1e-10)]  # the simplex curve approaches from above
    assert v[0] > v[1] > v[2]


# ---------------------------------------------------------------- measured recovery


def test_l1_supports_are_the_basis_pursuit_supports():
    # the lasso at alpha = 1e-7 ||x|| stands in for basis pursuit: on and near the transition its supports equal
    # those of an LP solver (HiGHS) for min sum(c) s.t. c F = x, c >= 0, sample by sample
    m, n = 32, 64
    rng = np.random.default_rng(3)
    F = random_dictionary(rng, n, m).astype(np.float64)
    for k in (4, 16, 20):
        C = T._draw_codes(rng, n, k, 12, positive=True)
        X = C @ F
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        codes, early = T._l1_codes(X, F, F @ F.T, positive=True)
        assert early == 0
        bp = np.stack([linprog(np.ones(n), A_eq=F.T, b_eq=x, bounds=(0, None), method="highs").x for x in X])
        assert (T.support(codes) == T.support(bp)).all()


def test_sensing_lasso_finds_the_same_support_in_the_easy_regime():
    from monosemantic.sensing import lasso

    m, n, k = 32, 64, 4
    rng = np.random.default_rng(4)
    F = random_dictionary(rng, n, m).astype(np.float64)
    C = T._draw_codes(rng, n, k, 20, positive=True)
    X = C @ F
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ours, _ = T._l1_codes(X, F, F @ F.T, positive=True)
    u = lasso(X, F, alpha=T.L1_ALPHA, positive=True)
    assert len(u.unconverged) == 0
    assert (T.support(u.codes) == T.support(ours)).all() and (T.support(ours) == (C != 0)).all()


@pytest.mark.slow
def test_small_recovery_curves_around_the_guarantee_and_the_dt_curve():
    m = 32
    for n, seed in ((64, 0), (128, 1)):
        k_dt = T.dt_rho(m / n) * m  # 17.9 at n = 64, 11.7 at n = 128 (measured 50% points: 19.5, 12.2)
        ks = [1, 2, 4, 8, 12, 14, 16, 18, 20, 22, 26, 31]
        l1 = T.recovery_curve(m, n, ks, 40, "l1", seed=seed)
        om = T.recovery_curve(m, n, ks, 40, "omp", seed=seed)
        guarantee = T.coherence_guarantee(l1["mu"])
        for c in (l1, om):
            p = dict(zip(ks, c["success"]))
            assert all(p[k] == 1.0 for k in ks if k < guarantee) and p[1] == 1.0
            assert p[31] == 0.0  # far beyond the DT curve (rho ~ 1)
        assert l1["early"] == 0
        # finite size: at m = 32 the transition is ~ +-sqrt(m) ~ 5 k wide and, at small m/n, centred a little above
        # the asymptotic curve (measured at m = 64: +1.4 k at m/n = 1/16); 40 trials put the 50% point within
        # ~1 k of the finite-m one. So: within 3 k (0.1 m) of the DT k.
        assert abs(l1["k50"] - k_dt) <= 3.0, (n, l1["k50"], k_dt)
        # OMP with k steps breaks down before exact L1 (equal-sized coefficients are its hard case)
        assert om["k50"] < l1["k50"]


def test_recovery_curve_is_seeded():
    a = T.recovery_curve(16, 48, [2, 6, 10], 10, "omp", seed=5)
    b = T.recovery_curve(16, 48, [2, 6, 10], 10, "omp", seed=5)
    assert a["success"] == b["success"] and a["mu"] == b["mu"]


def test_transition_k_interpolates_the_first_crossing():
    assert T.transition_k([10, 20, 30], [1.0, 0.6, 0.1]) == pytest.approx(22.0)
    assert T.transition_k([10, 20], [1.0, 0.9]) is None


@pytest.mark.parametrize("args, match", [
    (dict(m=32, n=16, ks=[2], trials=5), "m <= n"),
    (dict(m=32, n=64, ks=[33], trials=5), "every k"),
    (dict(m=32, n=64, ks=[0, 3], trials=5), "every k"),
    (dict(m=32, n=64, ks=[2], trials=0), "trials"),
    (dict(m=32, n=64, ks=[2], trials=5, method="fista"), "method"),
    (dict(m=32, n=64, ks=[], trials=5), "ks"),
])
def test_bad_input(args, match):
    with pytest.raises(InputError, match=match) as e:
        T.recovery_curve(**args)
    assert "\n" not in str(e.value)


def test_bad_input_curves():
    for f, a in ((T.dt_rho, 0.0), (T.dt_rho, 1.5), (T.psi, -0.1), (T.coherence_guarantee, 2.0)):
        with pytest.raises(InputError):
            f(a)
    with pytest.raises(InputError):
        T.welch_bound(0, 3)
    with pytest.raises(InputError):
        T.coherence(np.zeros((3, 2)))


# ---------------------------------------------------------------- toy models against the Welch bound


def test_toy_coherence_counts_represented_columns_and_antipodal_partners():
    s = 1 / math.sqrt(2)
    # columns: e1, -e1 (an antipodal pair), (s, s) at 45 degrees, and a weak feature (norm 0.3) left out
    W = np.array([[1.0, -1.0, s, 0.3], [0.0, 0.0, s, 0.0]])  # [m=2, n=4]
    r = T.toy_coherence(W)
    assert r["represented"] == 3 and r["antipodal_pairs"] == 1
    assert r["coherence"] == pytest.approx(1.0) and r["coherence_no_antipodal"] == pytest.approx(s)
    assert r["welch"] == pytest.approx(T.welch_bound(3, 2))
    # three random directions in a plane: the closest pair is always within 60 degrees (|cos| >= 1/2 = Welch)
    assert T.welch_bound(3, 2) <= r["random"] <= 1
    assert r["random"] == T.random_coherence(3, 2)


def test_random_directions_sit_above_the_welch_bound_and_below_one():
    for n, m in ((20, 5), (80, 20)):
        mu = T.random_coherence(n, m, draws=20)
        assert 1.5 * T.welch_bound(n, m) < mu < 1  # 200 draws: medians 0.95 and 0.72 against Welch 0.40 and 0.20
    assert T.random_coherence(20, 5, draws=5, seed=3) == T.random_coherence(20, 5, draws=5, seed=3)


def test_cli_writes_curves_and_rejects_bad_input(tmp_path, capsys):
    import json

    from test_cli import run

    code, out, err = run(["transition", "--out", tmp_path / "t", "--m", "16", "--n-over-m", "2", "4", "--trials", "4",
                          "--methods", "omp"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "t" / "result.json").read_text())
    assert [c["n"] for c in res["omp"]] == [32, 64] and res["l1"] == []
    assert all(c["dt_k"] == pytest.approx(T.dt_rho(16 / c["n"]) * 16) for c in res["omp"])
    assert (tmp_path / "t" / "transition.png").stat().st_size > 1000
    for args, words in ((["--n-over-m", "0"], "whole numbers"), (["--methods", "lasso"], "methods must be"),
                        (["--trials", "0"], "trials must be positive"), (["--m", "0"], "m must be positive")):
        code, _, err = run(["transition", "--out", tmp_path / "bad"] + args, capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
