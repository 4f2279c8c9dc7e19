"""Dictionary learners: hand-written gradients vs autograd, the estimator API, saving, resuming, bad input."""
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from monosemantic.errors import InputError
import monosemantic.recovery as R
from monosemantic.data import save_data, split, synth_uniform
from monosemantic.dictionary import (ICADictionary, MiniBatchDictionary, PCADictionary, SparseAutoencoder, load)
from monosemantic.dictionary import archs
from monosemantic.dictionary.archs import relu as relu_arch
from monosemantic.dictionary.archs.base import geometric_median
from monosemantic.dictionary.batches import Batches


@pytest.fixture(scope="module")
def small():
    """64 features in d 32, about 3 on: small enough to fit in a second."""
    return split(synth_uniform(64, 32, 3, 24_000, seed=3), 2000)


def _arch(name, k=4, penalty=0.0, bandwidth=0.2):
    return archs.get(name)(k=k, l1=penalty, l0=penalty, bandwidth=bandwidth)


def _params(arch, d=12, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = _arch(arch).init_params(d, n, 0.1 * torch.randn(d, generator=g), g)
    p["W_enc_T"] += 0.3 * torch.randn(n, d, generator=g)
    p["b_enc"] += 0.1 * torch.randn(n, generator=g)
    if arch == "relu":  # free decoder norms: the L1 is weighted by them
        p["W_dec"] *= torch.rand(n, 1, generator=g) + 0.5
    if arch == "jumprelu":
        p["log_theta"] = torch.full((n,), float(np.log(0.3)))
    return p


def _autograd_loss(x, p, arch, k, penalty, bandwidth, dead=None, aux_k=0, aux_coef=0.0):
    """The same losses written for autograd (JumpReLU's STE as Rajamanoharan et al. define it)."""
    q = {name: t.clone().requires_grad_(True) for name, t in p.items()}
    B = x.shape[0]
    xc = x - q["b_dec"]
    pre = xc @ q["W_enc_T"].T + q["b_enc"]
    if arch == "topk":
        vals, idx = pre.topk(k, dim=1)
        f = torch.zeros_like(pre).scatter(1, idx, vals.relu())
    elif arch == "batchtopk":
        vals, idx = pre.reshape(-1).topk(k * B)
        f = torch.zeros(B * pre.shape[1]).scatter(0, idx, vals.relu()).reshape(B, -1)
    elif arch == "relu":
        f = pre.relu()
    else:
        theta = q["log_theta"].exp()

        class Step(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z, th):
                ctx.save_for_backward(z, th)
                return (z > th).float()

            @staticmethod
            def backward(ctx, gout):
                z, th = ctx.saved_tensors
                kern = ((z - th).abs() < bandwidth / 2).float() / bandwidth
                return None, (-gout * kern).sum(0)

        class Jump(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z, th):
                ctx.save_for_backward(z, th)
                return z * (z > th)

            @staticmethod
            def backward(ctx, gout):
                z, th = ctx.saved_tensors
                kern = ((z - th).abs() < bandwidth / 2).float() / bandwidth
                return gout * (z > th), (-gout * th * kern).sum(0)

        f = Jump.apply(pre, theta)
    x_hat = f @ q["W_dec"] + q["b_dec"]
    loss = ((x_hat - x) ** 2).sum(1).mean()
    if arch == "relu":
        loss = loss + penalty * (f * q["W_dec"].norm(dim=1)).sum(1).mean()
    if arch == "jumprelu":
        loss = loss + penalty * Step.apply(pre, theta).sum(1).mean()
    if aux_coef:
        resid = (x - x_hat).detach()
        vals, idx = pre.masked_fill(~dead, -float("inf")).topk(min(aux_k, int(dead.sum())), dim=1)
        fa = torch.zeros_like(pre).scatter(1, idx, vals.relu())
        loss = loss + aux_coef * ((fa @ q["W_dec"] - resid) ** 2).sum(1).mean()
    loss.backward()
    return {name: t.grad for name, t in q.items()}


@pytest.mark.parametrize("shift", [0.0, -1.5])  # -1.5: many selected pre-activations are negative (ReLU'd away)
@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu", "jumprelu"])
def test_hand_gradients_match_autograd(arch, shift):
    torch.manual_seed(0)
    x = torch.rand(64, 12)
    p = _params(arch)
    p["b_enc"] += shift
    state = {"dead": torch.zeros(40, dtype=torch.bool)}
    penalty = 0.05 if arch == "relu" else 0.02
    g, info = _arch(arch, 4, penalty, 0.2).step(x, p, state, 8, 0.0)
    ref = _autograd_loss(x, p, arch, 4, penalty, 0.2)
    assert info["l0"] > 0
    for name in p:
        torch.testing.assert_close(g[name], ref[name], rtol=1e-4, atol=1e-5, msg=f"{arch} {name}")


def test_relu_dense_and_sparse_paths_agree(monkeypatch):
    x = torch.rand(64, 12)
    p = _params("relu")
    g_dense, _ = _arch("relu", 0, 0.05, 0).step(x, p, {}, 0, 0.0)
    monkeypatch.setattr(relu_arch, "SPARSE_MAX", 1.0)
    g_sparse, _ = _arch("relu", 0, 0.05, 0).step(x, p, {}, 0, 0.0)
    for name in p:
        torch.testing.assert_close(g_sparse[name], g_dense[name], rtol=1e-4, atol=1e-6)


def test_auxk_gradients_match_autograd():
    x = torch.rand(64, 12)
    p = _params("topk")
    dead = torch.zeros(40, dtype=torch.bool)
    dead[::3] = True
    g, info = _arch("topk", 4).step(x, p, {"dead": dead}, 6, 0.5)
    ref = _autograd_loss(x, p, "topk", 4, 0.0, 0.0, dead, 6, 0.5)
    assert info["aux"] > 0
    for name in p:
        torch.testing.assert_close(g[name], ref[name], rtol=1e-4, atol=1e-5)


def test_geometric_median_is_robust():
    X = torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1], [100, 100]])
    m = geometric_median(X)
    # the mean is (20.4, 20.4); the median stays in the unit square (the outlier pulls with a unit force only)
    assert ((m >= 0) & (m <= 1)).all()
    from scipy.optimize import minimize

    Y = torch.randn(200, 5, generator=torch.Generator().manual_seed(0)) ** 3
    dist = lambda y: np.linalg.norm(Y.numpy().astype(float) - y, axis=1).sum()  # noqa: E731
    best = minimize(dist, Y.mean(0).numpy(), method="Powell", options=dict(xtol=1e-8, ftol=1e-12)).x
    assert np.linalg.norm(geometric_median(Y).numpy() - best) < 1e-4


def test_topk_fit_recovers_and_api(small, tmp_path):
    tr, ev = small
    F = tr.F
    sae = SparseAutoencoder("topk", 64, 3, samples=400_000, seed=0).fit(tr.X)
    s = R.dictionary_scores(F, sae.components_)
    # 64 features, d 32: 400k samples recover nearly all (measured 0.98-1.0 over seeds); a random dictionary ~0.5
    assert s["mmcs"] > 0.95 and s["recovered"] > 0.85
    C = sae.transform(ev.X)
    assert sp.isspmatrix_csr(C) and C.shape == (2000, 64) and C.dtype == np.float32
    assert (C.getnnz(axis=1) <= 3).all()  # TopK: at most k per sample
    Ct = sae.transform(ev.X, output="torch")
    assert Ct.layout == torch.sparse_csr and torch.equal(Ct.to_dense(), torch.from_numpy(C.toarray()))
    X_hat = sae.inverse_transform(C)
    assert X_hat.shape == ev.X.shape
    assert sae.score(ev.X) == pytest.approx(1 - R.fvu(ev.X, X_hat), abs=1e-6) and sae.score(ev.X) > 0.8
    X64 = ev.X.astype(np.float64)  # and against the definition written out, not recovery.fvu
    r2 = 1 - ((X64 - X_hat) ** 2).sum() / ((X64 - X64.mean(0)) ** 2).sum()
    assert sae.score(ev.X) == pytest.approx(r2, abs=1e-5)
    assert sae.get_params()["k"] == 3 and sae.set_params(k=4).k == 4
    sae.set_params(k=3)
    # saved in SAELens's names and shapes; loads to identical codes
    path = sae.save(tmp_path / "sae")
    from safetensors.torch import load_file

    w = load_file(str(path / "sae_weights.safetensors"))
    assert {n: tuple(t.shape) for n, t in w.items()} == {"W_enc": (32, 64), "b_enc": (64,), "W_dec": (64, 32),
                                                         "b_dec": (32,)}
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["d_in"] == 32 and cfg["d_sae"] == 64 and cfg["k"] == 3
    again = load(path)
    assert (abs(again.transform(ev.X) - C)).max() == 0
    with pytest.raises(InputError, match="exists"):
        sae.save(tmp_path / "sae")


@pytest.mark.parametrize("arch", ["relu", "batchtopk", "jumprelu"])
def test_other_archs_learn_and_round_trip(small, tmp_path, arch):
    tr, ev = small
    sae = SparseAutoencoder(arch, 64, 3, samples=150_000, seed=1).fit(tr.X)
    # short runs: well above a random dictionary's MMCS (~0.45 for 64 random atoms in 32 dims), FVU well below 1
    assert R.dictionary_scores(tr.F, sae.components_)["mmcs"] > 0.75
    assert sae.score(ev.X) > 0.6
    C = sae.transform(ev.X)
    back = load(sae.save(tmp_path / arch))
    assert (abs(back.transform(ev.X) - C)).max() < 1e-6
    assert back.arch == arch
    if arch != "relu":
        w = json.loads((tmp_path / arch / "cfg.json").read_text())
        assert w["architecture"] == "jumprelu"  # SAELens saves a BatchTopK as a jumprelu too
        from safetensors.torch import load_file

        assert load_file(str(tmp_path / arch / "sae_weights.safetensors"))["threshold"].shape == (64,)


def test_resampling_revives_dead_latents(small):
    tr, _ = small
    # kill 10 latents (their encoder rows point nowhere); a resampling pass must restart them
    sae2 = SparseAutoencoder("topk", 64, 3, samples=60_000, resample_every=50, seed=0)
    sae2._init(Batches(tr.X, 256))
    sae2.params_["W_enc_T"][:10] = 0
    sae2.params_["b_enc"][:10] = -10
    sae2._run(Batches(tr.X, 256), 60_000 // 256, None, 0)
    assert sae2.n_resampled_ >= 10
    assert (sae2.params_["W_enc_T"][:10].norm(dim=1) > 0).all()
    # restarted, not just moved: their bias left -10 and they fire again on the training data
    assert (sae2.params_["b_enc"][:10] > -10).all()
    assert (sae2.transform(tr.X)[:, :10].getnnz(axis=0) > 0).sum() >= 8


def _mostly_zero_rows(n=20_000, d=128, n_dirs=16, p_row=0.03, seed=0):
    """Like an L1-penalised LM's MLP activations: 97% of the rows all zero, the others 1-2 of a few non-negative
    directions (3 neurons each) with exponential sizes; about 0.1% of the entries non-zero. X: [n, d]."""
    rng = np.random.default_rng(seed)
    D = np.zeros((n_dirs, d), np.float32)
    for i in range(n_dirs):
        D[i, rng.choice(d, 3, replace=False)] = rng.uniform(0.5, 1.0, 3)
    X = np.zeros((n, d), np.float32)
    for r in np.flatnonzero(rng.random(n) < p_row):
        m = rng.integers(1, 3)
        X[r] = rng.exponential(1.0, m).astype(np.float32) @ D[rng.choice(n_dirs, m, replace=False)]
    return X


def test_resampling_does_not_hurt_mostly_zero_activations():
    X = _mostly_zero_rows()
    tr, ev = X[:16_000], X[16_000:]
    kw = dict(arch="topk", n_latents=256, k=8, samples=100_000, seed=0)
    fvu, restarts = {}, {}
    for every in (50, 0):
        sae = SparseAutoencoder(**kw, resample_every=every).fit(tr)
        fvu[every] = R.fvu(ev, sae.inverse_transform(sae.transform(ev)))
        restarts[every] = sae.n_resampled_
    # restarts change the training path, so the FVU moves either way (0.8x to 1.3x of no resampling over seeds
    # and sizes); restarts drawn towards the all-zero rows' residuals and firing everywhere made it 11x to 17x
    assert fvu[50] < 1.5 * fvu[0], fvu
    # it does restart, towards the few badly reconstructed rows of each batch (not ~700 times, mostly at zero rows)
    assert 0 < restarts[50] < 256


def test_data_sources_agree(small, tmp_path):
    tr, _ = small
    X = tr.X[:5000]
    kw = dict(arch="topk", n_latents=64, k=3, samples=20_000, seed=2)
    ref = SparseAutoencoder(**kw).fit(X).components_
    np.testing.assert_array_equal(SparseAutoencoder(**kw).fit(torch.from_numpy(X)).components_, ref)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(SparseAutoencoder(**kw).fit(mm).components_, ref)
    # an iterator of batches (any sizes) is re-cut into full batches and read once
    it = SparseAutoencoder(**kw).fit(iter([X[i:i + 700] for i in range(0, 5000, 700)]))
    assert it.step_ == 5000 // 256
    part = SparseAutoencoder(**kw).partial_fit(X)
    assert part.step_ == 5000 // 256


def test_checkpoint_resume_equals_uninterrupted(small, tmp_path):
    tr, _ = small
    kw = dict(arch="topk", n_latents=64, k=3, samples=40 * 256, resample_every=10, seed=4, history_every=5)
    full = SparseAutoencoder(**kw).fit(tr.X)

    class Stop(Exception):
        pass

    def stop_at_25(est, step, samples, secs):
        if step == 25:
            raise Stop

    ck = tmp_path / "ck"
    with pytest.raises(Stop):
        SparseAutoencoder(**kw, checkpoint=str(ck), checkpoint_every=20).fit(tr.X, callback=stop_at_25, eval_every=1)
    saved = json.loads((ck / "trainer.json").read_text())
    assert saved["step"] == 20 and saved["history"]["step"] == [5, 10, 15, 20]
    resumed = SparseAutoencoder(**kw, checkpoint=str(ck), checkpoint_every=20).fit(tr.X)
    assert resumed.step_ == 40
    np.testing.assert_allclose(resumed.components_, full.components_, atol=1e-6)
    # the training history survives the checkpoint too
    assert resumed.history_["step"] == full.history_["step"]
    np.testing.assert_allclose(resumed.history_["fvu"], full.history_["fvu"], rtol=1e-5)
    with pytest.raises(InputError, match="other parameters .*k"):
        SparseAutoencoder(**{**kw, "k": 4}, checkpoint=str(ck)).fit(tr.X)


def test_classical_baselines(small, tmp_path):
    tr, ev = small
    mb = MiniBatchDictionary(64, alpha=0.1, samples=10 * 1024).fit(tr.X.astype(np.float32))
    assert mb.components_.shape == (64, 32) and mb.step_ == 10
    C = mb.transform(ev.X)
    assert sp.isspmatrix_csr(C) and (C.data >= 0).all() and mb.score(ev.X) > 0.5
    pca = PCADictionary(32).fit(tr.X)
    assert pca.sign_free and pca.score(ev.X) == pytest.approx(1, abs=1e-4)  # complete basis: exact
    ica = ICADictionary(32, max_iter=200).fit(tr.X[:5000])
    # FastICA finds some true directions (up to sign) even though sources outnumber dims; PCA barely any
    s_ica = R.dictionary_scores(tr.F, ica.components_, absolute=True)
    s_pca = R.dictionary_scores(tr.F, pca.components_, absolute=True)
    assert s_ica["mmcs"] > s_pca["mmcs"]
    for est in (mb, pca, ica):
        back = load(est.save(tmp_path / est.kind))
        assert type(back) is type(est)
        np.testing.assert_allclose(back.inverse_transform(back.transform(ev.X[:50])),
                                   est.inverse_transform(est.transform(ev.X[:50])), atol=1e-4)
    with pytest.raises(InputError, match="PCA needs"):
        PCADictionary(33).fit(tr.X)


def test_bad_input(small, tmp_path):
    tr, _ = small
    with pytest.raises(InputError, match="k must lie"):
        SparseAutoencoder("topk", 64, 64).fit(tr.X)
    with pytest.raises(InputError, match="unknown architecture"):
        SparseAutoencoder("gated", 64).fit(tr.X)
    X = tr.X[:1000].copy()
    X[5, 3] = np.nan
    with pytest.raises(InputError, match="NaN or Inf"):
        SparseAutoencoder("topk", 64, 3).fit(X)
    with pytest.raises(InputError, match="fewer than one batch"):
        SparseAutoencoder("topk", 64, 3, batch=256).fit(tr.X[:100])
    with pytest.raises(InputError, match=r"\[samples, d\]"):
        SparseAutoencoder("topk", 64, 3).fit(tr.X[0])
    with pytest.raises(InputError, match="not fitted"):
        SparseAutoencoder().transform(tr.X)
    sae = SparseAutoencoder("topk", 64, 3, samples=2560).fit(tr.X)
    with pytest.raises(InputError, match="d=16 but"):
        sae.transform(tr.X[:, :16])
    with pytest.raises(InputError, match="not a saved"):
        load(tmp_path / "nothing")
    path = sae.save(tmp_path / "s")
    (path / "sae_weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt safetensors"):
        load(path)
    (path / "cfg.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt JSON"):
        load(path)


def test_cli_train_and_score(small, tmp_path, capsys):
    from monosemantic.cli import main

    tr, _ = small
    data = save_data(tmp_path / "d.npz", synth_uniform(64, 32, 3, 12_000, seed=8))
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["sae", "train", "--data", str(data), "--arch", "topk", "--k", "3", "--latents", "64",
              "--samples", "50000", "--out", str(out), "--no-progress"])
    assert e.value.code == 0
    for f in ("cfg.json", "sae_weights.safetensors", "config.json", "result.json"):
        assert (out / f).is_file()
    res = json.loads((out / "result.json").read_text())
    assert res["wall_s"] > 0 and res["samples"] == 50000 // 256 * 256
    with pytest.raises(SystemExit) as e:
        main(["sae", "score", str(out), "--truth", str(data), "--n-eval", "2000"])
    assert e.value.code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["samples"] == 2000 and 0 < scores["mmcs"] <= 1 and "support_f1" in scores
    from monosemantic.data import load_data

    assert scores["mmcs"] == pytest.approx(R.dictionary_scores(load_data(data).F, load(out).components_)["mmcs"])
    for args, msg in ((["--k", "64"], "k must lie in [1, latents=64), got 64"), (["--arch", "gated"], "arch")):
        with pytest.raises(SystemExit) as e:
            main(["sae", "train", "--data", str(data), "--latents", "64", "--out", str(tmp_path / "x"), *args])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    np.save(tmp_path / "tiny.npy", np.ones((10, 32), np.float32))
    with pytest.raises(SystemExit) as e:
        main(["sae", "train", "--data", str(tmp_path / "tiny.npy"), "--latents", "64", "--k", "3",
              "--out", str(tmp_path / "y")])
    assert e.value.code == 2 and "fewer than one batch" in capsys.readouterr().err


def test_registry_lists_the_architectures_and_refuses_unknown_ones(small):
    assert list(archs.ARCHS) == ["relu", "topk", "batchtopk", "jumprelu"]
    assert all(archs.get(name).name == name for name in archs.ARCHS)
    assert [archs.from_saelens(a.saelens, a.name) for a in archs.ARCHS.values()] == list(archs.ARCHS.values())
    assert archs.from_saelens("jumprelu") is archs.ARCHS["jumprelu"] and archs.from_saelens("gated") is None
    msg = "unknown architecture 'gated' (one of relu, topk, batchtopk, jumprelu)"
    with pytest.raises(InputError) as e:
        archs.get("gated")
    assert str(e.value) == msg
    with pytest.raises(InputError) as e:
        SparseAutoencoder("gated").fit(small[0].X)
    assert str(e.value) == msg


def test_no_architecture_switches_outside_the_registry():
    """Adding an architecture is a module in dictionary/archs/ and a line in ARCHS: nothing else tests names."""
    import re
    from pathlib import Path

    src = Path(__file__).parent.parent / "src/monosemantic"
    files = [*(src / "dictionary").glob("*.py"), src / "experiments/unfolding.py"]
    switch = re.compile(r"""\barch\s*(==|!=|(not\s+)?in\b)|==\s*["'](relu|topk|batchtopk|jumprelu)["']""")
    hits = [f"{f.name}:{i}" for f in files for i, line in enumerate(f.read_text().splitlines(), 1) if switch.search(line)]
    assert not hits, hits
