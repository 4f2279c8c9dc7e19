"""Unfolding: batched OMP against a known dictionary, its stop rule, and bad input."""
import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file

from monosemantic.errors import InputError
import monosemantic.recovery as R
from monosemantic.data import Data, save_data, synth_uniform
from monosemantic.dictionary import SparseAutoencoder
import monosemantic.experiments.unfolding as U
from monosemantic.config import UnfoldConfig
from monosemantic.sensing import omp, unfold, unfold_info

from test_cli import run


@pytest.fixture(scope="module")
def small():
    # 128 random unit atoms in d = 64, about 3 on per sample: coherence ~0.5 but OMP recovers such supports
    # from noiseless data almost surely (here every one; at d = 48 one sample of 600 defeats OMP, sklearn's too)
    return synth_uniform(n_features=128, d=64, k=3, samples=600, seed=1)


def test_omp_recovers_supports_and_codes_exactly(small):
    u = unfold_info(small.X, small.F, "omp", tol=1e-6)
    s = R.code_scores(small.codes, u.codes)
    # X is float32 (rounding ~1e-7 relative), so codes match to ~1e-6 and every support exactly
    assert s["support_f1"] == 1.0 and s["code_rel_err"] < 1e-5
    assert len(u.unconverged) == 0 and u.rel_residual.max() <= 1e-6
    assert u.codes.shape == (600, 128) and u.codes.dtype == np.float32


def test_same_answer_as_sklearn_omp(small):
    from sklearn.linear_model import orthogonal_mp

    with warnings.catch_warnings():  # samples with more than 3 true atoms stop above tol, in both
        warnings.simplefilter("ignore", RuntimeWarning)
        C = unfold(small.X[:50], small.F, k=3).toarray()
        ref = orthogonal_mp(small.F.T.astype(np.float64), small.X[:50].T.astype(np.float64), n_nonzero_coefs=3).T
    np.testing.assert_allclose(C, ref, atol=1e-5)  # float32 codes


def test_tol_is_relative_and_scale_free(small):
    X = small.X[:200].astype(np.float64)
    loose = unfold_info(X, small.F, tol=0.3)
    assert (loose.rel_residual <= 0.3).all() and len(loose.unconverged) == 0
    # the loose stop keeps fewer atoms than the exact one, and it stops as soon as it may
    assert loose.codes.nnz < unfold_info(X, small.F, tol=1e-6).codes.nnz
    # scaling the data by 1000 scales codes, not the stopping point
    big = unfold_info(X * 1000, small.F, tol=0.3)
    assert (big.codes != 0).toarray().tolist() == (loose.codes != 0).toarray().tolist()
    np.testing.assert_allclose(big.codes.toarray(), 1000 * loose.codes.toarray(), rtol=1e-5, atol=1e-3)


def test_atom_norms_do_not_matter_and_codes_are_for_atoms_as_given(small):
    scale = np.linspace(0.5, 2, 128)[:, None]
    u = unfold_info(small.X[:100], small.F * scale, tol=1e-6)
    np.testing.assert_allclose(u.codes @ (small.F * scale), small.X[:100], atol=1e-5)


def test_unconverged_samples_are_reported_not_hidden(small):
    u = unfold_info(small.X, small.F, tol=1e-6, k=1)
    l0 = np.diff(small.codes.indptr)
    assert set(u.unconverged.tolist()) == set(np.flatnonzero(l0 >= 2).tolist())  # one atom can't code two
    assert (u.rel_residual[u.unconverged] > 1e-6).all()
    with pytest.warns(RuntimeWarning, match="did not reach"):
        unfold(small.X, small.F, k=1)


def test_zero_samples_get_zero_codes(small):
    X = np.vstack([np.zeros((3, 64), np.float32), small.X[:5]])
    u = unfold_info(X, small.F)
    assert u.codes[:3].nnz == 0 and len(u.unconverged) == 0


def test_same_numbers_in_chunks_and_alone(small, monkeypatch):
    import monosemantic.sensing as S

    whole = unfold(small.X, small.F)
    monkeypatch.setattr(S, "CHUNK", 37)
    assert abs(unfold(small.X, small.F) - whole).max() == 0


def test_torch_output(small):
    C = unfold(small.X[:10], small.F, output="torch")
    assert C.layout == torch.sparse_csr and C.shape == (10, 128)
    assert torch.equal(C.to_dense(), torch.from_numpy(unfold(small.X[:10], small.F).toarray()))


def test_sae_method_uses_the_encoder_and_omp_uses_the_decoder(small):
    sae = SparseAutoencoder(arch="topk", n_latents=128, k=3, samples=2048, batch=256, seed=0).fit(small.X)
    enc = U.unfold_codes(small.X[:50], sae, method="sae")
    assert (enc.toarray() == sae.transform(small.X[:50]).toarray()).all()
    u = U.unfold_with(small.X[:50], sae, method="omp", tol=1e-3)
    X_hat = u.codes @ sae.components_ + sae.mean_
    assert np.linalg.norm(X_hat - small.X[:50], axis=1).max() <= 1e-3 * np.linalg.norm(small.X[:50], axis=1).max() + 1e-6
    # and per sample: the stop rule is relative to each sample's own norm after the decoder bias is subtracted
    # (float32 codes: ~1e-7 slack)
    err = np.linalg.norm(X_hat - small.X[:50], axis=1)
    assert len(u.unconverged) == 0
    assert (err <= 1e-3 * np.linalg.norm(small.X[:50] - sae.mean_, axis=1) + 1e-6).all()


@pytest.mark.parametrize("X, F, kw, words", [
    (np.ones((4, 5)), np.ones((7, 6)), {}, "d=5"),
    (np.ones((4, 6)), np.vstack([np.ones((2, 6)), np.zeros((1, 6))]), {}, "zero norm"),
    (np.ones((4, 6)), np.eye(6), {"tol": 0.0}, "tol must be > 0"),
    (np.ones((4, 6)), np.eye(6), {"tol": -1.0}, "tol must be > 0"),
    (np.array([[np.nan] * 6]), np.eye(6), {}, "NaN"),
    (np.ones((4, 6)), np.full((6, 6), np.nan), {}, "NaN"),
    (np.ones((4, 6)), np.eye(6), {"k": 0}, "k (atoms"),
    (np.ones((4, 6)), np.eye(6), {"method": "lasso"}, "method must be"),
    (np.ones((4, 6)), np.eye(6), {"method": "sae"}, "method must be"),  # an SAE's encoder: experiments.unfolding
])
def test_bad_input(X, F, kw, words):
    with pytest.raises(InputError, match=words if words != "k (atoms" else r"k \(atoms"):
        unfold(X, F, **kw)


def test_sae_method_needs_an_estimator():
    with pytest.raises(InputError, match="needs a saved dictionary"):
        U.unfold_codes(np.ones((4, 6)), np.eye(6), method="sae")


def test_cli_writes_csr_codes_and_result(tmp_path, capsys, small):
    save_data(tmp_path / "d.npz", small)
    np.save(tmp_path / "F.npy", small.F)
    out = tmp_path / "run"
    code, stdout, _ = run(["unfold", "--data", tmp_path / "d.npz", "--dictionary", tmp_path / "F.npy",
                           "--tol", 1e-6, "--out", out], capsys)
    assert code == 0 and str(out) in stdout
    t = load_file(out / "codes.safetensors")
    res = json.loads((out / "result.json").read_text())
    C = sp.csr_matrix((t["values"].numpy(), t["indices"].numpy(), t["indptr"].numpy()), shape=res["shape"])
    assert R.code_scores(small.codes, C)["support_f1"] == 1.0
    assert res["unconverged"] == 0 and res["samples_per_s"] == pytest.approx(600 / res["wall_s"])
    assert json.loads((out / "config.json").read_text())["tol"] == 1e-6
    # k = 1: the unconverged samples are listed in result.json
    code, _, _ = run(["unfold", "--data", tmp_path / "d.npz", "--dictionary", tmp_path / "d.npz", "--k", 1,
                      "--out", tmp_path / "run1"], capsys)
    res = json.loads((tmp_path / "run1" / "result.json").read_text())
    assert code == 0 and res["unconverged"] == len(res["unconverged_indices"]) > 0
    code, _, _ = run(["unfold", "--data", tmp_path / "d.npz", "--dictionary", tmp_path / "d.npz", "--method", "l1",
                      "--alpha", 0.02, "--positive", "--out", tmp_path / "runl1"], capsys)
    t = load_file(tmp_path / "runl1" / "codes.safetensors")
    cfg = json.loads((tmp_path / "runl1" / "config.json").read_text())
    assert code == 0 and (t["values"] > 0).all() and cfg["alpha"] == 0.02 and cfg["positive"] is True


def test_cli_bad_input_exit_2(tmp_path, capsys, small):
    save_data(tmp_path / "d.npz", small)
    np.save(tmp_path / "F_wide.npy", np.ones((10, 65), np.float32))
    save_data(tmp_path / "nan.npz", Data(np.full((3, 64), np.nan, np.float32)))
    cases = [(["--dictionary", tmp_path / "F_wide.npy"], "d=64"),
             (["--dictionary", tmp_path / "d.npz", "--tol", 0], "tol must be > 0"),
             (["--dictionary", tmp_path / "missing.npy"], "missing dictionary"),
             (["--dictionary", tmp_path / "nan.npz"], "holds no dictionary F")]
    for extra, words in cases:
        code, _, err = run(["unfold", "--data", tmp_path / "d.npz", "--out", tmp_path / "o"] + extra, capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(["unfold", "--data", tmp_path / "nan.npz", "--dictionary", tmp_path / "d.npz",
                        "--out", tmp_path / "o"], capsys)
    assert code == 2 and "NaN" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("positive", [True, False])
def test_l1_matches_sklearn_lasso_lars(small, positive):
    from sklearn.decomposition import SparseCoder

    X = small.X[:150].astype(np.float64)
    X = X if positive else X * np.sign(np.arange(150) % 3 - 0.5)[:, None]  # some negated samples: signed codes
    u = unfold_info(X, small.F, "l1", alpha=0.02, positive=positive)
    ref = SparseCoder(small.F.astype(np.float64), transform_algorithm="lasso_lars", transform_alpha=0.02,
                      positive_code=positive).transform(X)
    assert len(u.unconverged) == 0
    # one convex problem, solved exactly by both: codes agree to float32 and solver precision
    np.testing.assert_allclose(u.codes.toarray(), ref, atol=1e-5)
    assert positive == (u.codes.data >= 0).all() and (u.codes.data < 0).any() != positive


def test_l1_reports_samples_it_cannot_finish(small):
    from monosemantic.sensing import lasso

    u = lasso(small.X[:100].astype(np.float64), small.F.astype(np.float64), alpha=1e-4, max_rounds=1)
    assert len(u.unconverged) > 0  # one round cannot settle every support at a small penalty


def test_l1_bad_alpha(small):
    with pytest.raises(InputError, match="alpha must be > 0"):
        unfold(small.X, small.F, method="l1", alpha=0)


def test_report_section_quick():
    import math

    from monosemantic.experiments.unfolding import demo
    from monosemantic.report.sections.unfolding import section

    sec, summary = section(demo(quick=True, progress=False))
    assert set(summary) == {"cosine_vs_overlap", "unfolded_toy_model", "unfolding"}
    assert len(summary["cosine_vs_overlap"]) == 8 and all(-1 <= r <= 1 and not math.isnan(r)
                                                            for r in summary["cosine_vs_overlap"].values())
    # the more superposition, the less cosine says about shared features (quick run: r = 0.48 at S = 0.99,
    # 0.01 at S = 0.7, over ~1M pairs each)
    r = summary["cosine_vs_overlap"]
    assert r["0.99"] > 0.3 and r["0.7"] < 0.15
    # the unfolded model: where about one feature is on (S >= 0.99, n = 40 in m = 10) the non-negative lasso
    # recovers x better than the toy model's own output (quick run: 0.014 against 0.09-0.11); at S = 0.5 (9
    # represented features on in 10 dims) compressed sensing cannot work and the error is of the order of x
    u = summary["unfolded_toy_model"]
    for s in ("0.99", "0.995"):
        assert u[s]["l1_err"] < 0.5 * u[s]["toy_err"]
    assert u["0.5"]["l1_err"] > 0.5 and u["0.5"]["omp_err"] > 0.5
    # with the true dictionary of the section-5 data OMP recovers the supports (benchmark: F1 0.99999)
    assert summary["unfolding"]["omp"]["support_f1"] >= 0.999 and summary["unfolding"]["l1"]["support_f1"] >= 0.99


def test_l1_grows_its_support_slots(small):
    from sklearn.decomposition import SparseCoder

    from monosemantic.sensing import lasso

    # noisy samples at a small penalty: supports of up to ~60 atoms, far beyond the OMP warm start's (~45) plus
    # one slot of slack, so the slots must grow; the result is still the lasso's optimum
    X = small.X[:60].astype(np.float64) + 0.05 * np.random.default_rng(0).standard_normal((60, 64))
    F = small.F.astype(np.float64)
    u = lasso(X, F, alpha=0.01, slack=1)
    ref = SparseCoder(F, transform_algorithm="lasso_lars", transform_alpha=0.01).transform(X)
    assert len(u.unconverged) == 0 and u.codes.getnnz(1).max() > 50
    C = u.codes.toarray().astype(np.float64)

    def objective(C):
        return 0.5 * ((X - C @ F) ** 2).sum(1) + 0.01 * np.abs(C).sum(1)

    # supports of ~60 atoms in d = 64 are ill-conditioned: codes agree to ~1e-5, the objective to float precision
    assert (objective(C) <= objective(ref) + 1e-9).all()
    np.testing.assert_allclose(C, ref, atol=1e-4)


@pytest.fixture(scope="module")
def trained_saes():
    data = synth_uniform(n_features=64, d=32, k=2, samples=12_000, seed=2)
    X = data.X[:10_000]
    return data, {arch: SparseAutoencoder(arch, 64, 2, samples=60_000, seed=0).fit(X) for arch in ("relu", "topk")}


def test_amortization_gap(trained_saes):
    from monosemantic.experiments.unfolding import amortization_gap

    data, saes = trained_saes
    X, codes = data.X[10_000:], data.codes[10_000:]
    for arch, sae in saes.items():
        g = amortization_gap(sae, X, data.F, codes)
        assert list(g) == ["encoder", "unfold: own decoder", "unfold: true dictionary", "exact: true dictionary"]
        # the codes that made the data, recovered by OMP from noiseless samples (64 atoms in d = 32 are coherent
        # enough that OMP misses the odd support: 0.9994 here)
        assert g["exact: true dictionary"]["support_f1"] > 0.995 and g["exact: true dictionary"]["fvu"] < 1e-10
        enc, own = g["encoder"], g["unfold: own decoder"]
        if arch == "relu":
            # the objective row is half the SAE's own per-sample loss, computed here from its weights
            C = sae.transform(X).toarray()
            p = {k: v.numpy() for k, v in sae.params_.items()}
            X_hat = C @ p["W_dec"] + p["b_dec"]
            loss = (((X - X_hat) ** 2).sum(1) + sae._penalty * (C * np.linalg.norm(p["W_dec"], axis=1)).sum(1)).mean()
            assert enc["objective"] == pytest.approx(loss / 2, rel=1e-5)
            # the lasso is that objective's exact minimum over c >= 0: no code can do better than it
            assert own["objective"] <= enc["objective"] + 1e-9 and own["unconverged"] == 0
        else:
            assert own["l0"] <= sae.k + 1e-9 and enc["l0"] <= sae.k + 1e-9
        # with its decoder fixed, better inference reconstructs better than the encoder (measured FVU: TopK
        # 0.216 -> 0.178, ReLU+L1 0.105 -> 0.058), and the true dictionary better still (0.096, 0.008)
        assert own["fvu"] < enc["fvu"] and g["unfold: true dictionary"]["fvu"] < enc["fvu"]


@pytest.mark.parametrize("positive", [True, False])
def test_fista_reaches_the_lasso_optimum(small, positive):
    from monosemantic.sensing import fista

    X = small.X[:100].astype(np.float64) * np.where(np.arange(100) % 3 == 0, -1.0, 1.0)[:, None]
    exact = unfold_info(X, small.F, "l1", alpha=0.02, positive=positive)
    u = unfold_info(X, small.F, "fista", alpha=0.02, positive=positive)
    assert len(u.unconverged) == 0
    # the same strongly convex (on these supports) problem: FISTA stops at 1e-6 relative steps, ~1e-5 from it
    np.testing.assert_allclose(u.codes.toarray(), exact.codes.toarray(), atol=1e-4)
    assert (u.codes.data >= 0).all() == positive
    few = fista(X, small.F.astype(np.float64), alpha=0.02, positive=positive, max_iter=3)
    assert len(few.unconverged) > 50  # three steps settle almost nothing: reported, not hidden


def test_unfold_run_in_blocks_gives_the_same_codes(tmp_path, small, monkeypatch):
    import monosemantic.sensing as S

    save_data(tmp_path / "d.npz", small)
    monkeypatch.setattr(S, "CHUNK", 16)  # blocks of 256 samples: 600 samples make three
    for method in ("omp", "l1"):
        a, b = tmp_path / f"a{method}", tmp_path / f"b{method}"
        cfg = UnfoldConfig(data=str(tmp_path / "d.npz"), dictionary=str(tmp_path / "d.npz"), method=method, tol=1e-3,
                           k=2)
        U.unfold_run(cfg, a)
        U.unfold_run(cfg, b, progress=True)
        ra, rb = (json.loads((p / "result.json").read_text()) for p in (a, b))
        assert ra["unconverged_indices"] == rb["unconverged_indices"] and ra["nnz"] == rb["nnz"]
        if method == "omp":
            assert ra["unconverged"] > 0 and max(ra["unconverged_indices"]) > 256  # k=2 leaves some behind
        ta, tb = load_file(a / "codes.safetensors"), load_file(b / "codes.safetensors")
        assert all(torch.equal(ta[key], tb[key]) for key in ("indptr", "indices", "values"))


def test_the_sae_method_needs_an_estimator(small):
    with pytest.raises(InputError, match="needs a saved dictionary"):
        U.unfold_with(small.X[:5], small.F, method="sae")
