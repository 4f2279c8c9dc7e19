"""Recovery scores, checked against hand-made cases and the peers' definitions (tests/reference_peers.py)."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import reference_peers as common
from monosemantic.data import synth_uniform
from monosemantic.recovery import (all_scores, best_cosines, code_scores, dead_latents, dictionary_scores, fvu, l0,
                                   matched_codes, reconstruction_scores, seed_overlap)


def _noisy_atoms(F, rng, noise, n_extra=0, flip=0):
    """A shuffled, rescaled, noisy copy of F with some extra random atoms and some sign flips."""
    A = F + noise * rng.standard_normal(F.shape)
    A[:flip] *= -1
    A = np.vstack([A, rng.standard_normal((n_extra, F.shape[1]))])
    A *= rng.uniform(0.5, 2, size=(len(A), 1))
    return A[rng.permutation(len(A))]


def test_dictionary_scores_hand_cases():
    F = np.eye(4)
    assert dictionary_scores(F, F) == {"mmcs": 1.0, "recovered": 1.0, "mcc_hungarian": 1.0}
    # one atom serving two features: best cosines are high but the one-to-one matching pays
    A = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    s = dictionary_scores(F, A)
    assert s["mmcs"] == pytest.approx((2 * 2 ** -0.5 + 2) / 4)
    assert s["recovered"] == 0.5
    assert s["mcc_hungarian"] == pytest.approx((2 ** -0.5 + 2) / 4)  # 3 matched, the 4th feature counts 0
    # a sign-flipped dictionary recovers nothing signed, everything with absolute=True
    assert dictionary_scores(F, -F)["recovered"] == 0
    assert dictionary_scores(F, -F, absolute=True)["mmcs"] == 1.0


def test_matches_the_peers_metrics():
    rng = np.random.default_rng(0)
    d = synth_uniform(96, 24, 3, 1500, seed=0)
    A = _noisy_atoms(d.F.astype(np.float64), rng, 0.08, n_extra=20, flip=10)
    ours, theirs = dictionary_scores(d.F, A), common.dictionary_metrics(d.F, A)
    for key in ("mmcs", "recovered", "mcc_hungarian"):  # peers normalise float32 F in float32: ~1e-8 apart
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6)
    assert 0.3 < ours["recovered"] < 1  # the case is not trivial
    codes = np.where(rng.random((1500, 116)) < 0.05, rng.random((1500, 116)), 0)
    codes[:, 5] = 0  # one dead latent
    X_hat = codes @ A
    ours, theirs = reconstruction_scores(d.X, X_hat, sp.csr_matrix(codes)), common.recon_metrics(d.X, X_hat, codes)
    for key in ("mse", "fvu", "l0", "dead"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-10)
    C = d.codes.toarray()
    C_hat = C * rng.uniform(0.8, 1.2, C.shape) + np.where(rng.random(C.shape) < 0.01, 0.1, 0)
    C_hat[rng.random(C.shape) < 0.1] = 0
    ours, theirs = code_scores(C, C_hat), common.code_recovery(C, C_hat)
    for key in ("code_rel_err", "support_precision", "support_recall", "support_f1"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-6)  # peers take ||C|| in float32


def test_code_scores_after_matching_atoms_to_features():
    d = synth_uniform(40, 20, 3, 800, seed=4)
    rng = np.random.default_rng(1)
    perm = rng.permutation(40)
    scale = rng.uniform(0.5, 2, 40)
    A = d.F[perm] * scale[:, None]  # atom j = feature perm[j], rescaled
    codes = d.codes[:, perm] @ sp.diags(1 / scale)  # codes such that codes @ A = X
    np.testing.assert_allclose(codes @ A, d.X, atol=1e-5)
    s = code_scores(d.codes, codes, d.F, A)
    assert s["support_f1"] == 1 and s["code_rel_err"] < 1e-6
    # PCA-style sign flips: signed matching fails, absolute matching flips the codes back
    flip = np.where(rng.random(40) < 0.5, -1.0, 1.0)
    s_abs = code_scores(d.codes, codes @ sp.diags(flip), d.F, A * flip[:, None], absolute=True)
    assert s_abs["code_rel_err"] < 1e-6
    assert code_scores(d.codes, codes @ sp.diags(flip), d.F, A * flip[:, None])["code_rel_err"] > 0.3
    M = matched_codes(codes, d.F, A)
    assert M.shape == d.codes.shape
    np.testing.assert_allclose(M.toarray(), d.codes.toarray(), atol=1e-5)  # the true codes, feature by feature


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_inputs_may_be_torch_dense_or_sparse():
    d = synth_uniform(32, 16, 2, 300, seed=5)
    C = torch.from_numpy(d.codes.toarray())
    for codes in (C, C.to_sparse_csr(), d.codes):
        assert l0(codes) == pytest.approx(d.codes.getnnz(axis=1).mean())
        assert dead_latents(codes) == int((d.codes.getnnz(axis=0) == 0).sum())
    assert fvu(torch.from_numpy(d.X), d.X) == 0
    s = all_scores(d.X, d.X, C, torch.from_numpy(d.F), d.F, d.codes)
    assert s["mmcs"] == pytest.approx(1) and s["support_f1"] == 1 and s["fvu"] == 0


def test_seed_overlap_and_best_cosines():
    rng = np.random.default_rng(2)
    F = rng.standard_normal((50, 30))
    A1 = F[:40] + 0.01 * rng.standard_normal((40, 30))
    A2 = np.vstack([F[:20], rng.standard_normal((20, 30))])
    # A1's atoms 0-19 are found by A2; atoms 20-39 have only random partners (cos << 0.9 in 30 dims)
    assert seed_overlap(A1, A2) == 0.5
    assert seed_overlap(A1, -A1) == 0 and seed_overlap(A1, -A1, absolute=True) == 1
    best = best_cosines(F, A1)
    assert best.shape == (50,) and (best[:40] > 0.99).all() and (best[40:] < 0.9).all()
