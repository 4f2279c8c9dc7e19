"""Ground-truth data sets and the data-file format."""
import numpy as np
import pytest
import scipy.sparse as sp

from monosemantic.errors import InputError
from monosemantic.data import (Data, load_data, save_data, sharkey_probabilities, split, synth_sharkey,
                               synth_uniform, toy_activations)
from reference_peers import make_uniform


def test_uniform_is_exactly_codes_times_dictionary():
    d = synth_uniform(64, 16, 3, 2000, seed=1)
    assert d.X.shape == (2000, 16) and d.F.shape == (64, 16) and d.codes.shape == (2000, 64)
    np.testing.assert_allclose(np.linalg.norm(d.F, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(d.codes @ d.F, d.X, atol=1e-5)
    assert 0 < d.codes.data.min() and d.codes.data.max() < 1
    # expected L0 = k = 3, std of the binomial sqrt(3 (1 - 3/64)) / sqrt(2000) ~ 0.04 for the mean
    assert abs(d.meta["l0_mean"] - 3) < 0.15


def test_uniform_draws_the_peers_data():
    X, D, cd, ci, cp = make_uniform(128, 32, 5, 3000, 7)
    ours = synth_uniform(128, 32, 5, 3000, seed=7)
    np.testing.assert_array_equal(ours.F, D)
    np.testing.assert_array_equal(ours.X, X)
    np.testing.assert_array_equal(ours.codes.indptr, cp)
    np.testing.assert_array_equal(ours.codes.data, cd)


def test_sharkey_frequencies_and_correlation():
    p = sharkey_probabilities(512, 5, 0.99)
    assert abs(p.sum() - 5) < 1e-9 and np.all(np.diff(p) < 0)
    d0 = synth_sharkey(512, 64, 5, 20_000, correlation=0.0, seed=0)
    d1 = synth_sharkey(512, 64, 5, 20_000, correlation=0.8, seed=0)
    for d in (d0, d1):
        freq = np.asarray((d.codes != 0).mean(0)).ravel()
        # the first 50 features have p ~ 0.05 -> 1000 on in 20k; binomial s.e. of the mean over 50 ~ 0.0002
        assert abs(freq[:50].mean() - p[:50].mean()) < 0.002
    on0 = (d0.codes[:, :40] != 0).toarray().astype(float)
    on1 = (d1.codes[:, :40] != 0).toarray().astype(float)
    off = ~np.eye(40, dtype=bool)
    # the copula couples on/off events: mean |corr| rises well above independent noise (~1/sqrt(20000) = 0.007)
    assert np.abs(np.corrcoef(on1.T)[off]).mean() > 3 * np.abs(np.corrcoef(on0.T)[off]).mean()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    d = synth_uniform(32, 8, 2, 500, seed=2)
    path = save_data(tmp_path / f"d{suffix}", d)
    e = load_data(path)
    np.testing.assert_array_equal(e.X, d.X)
    np.testing.assert_allclose(e.F, d.F, atol=1e-7)
    assert (e.codes != d.codes).nnz == 0
    assert e.meta["seed"] == 2


def test_npy_holds_x_alone_and_memory_maps(tmp_path):
    d = synth_uniform(32, 8, 2, 500, seed=2)
    path = save_data(tmp_path / "x.npy", d)
    e = load_data(path, mmap=True)
    assert isinstance(e.X, np.memmap) and e.F is None and e.codes is None
    np.testing.assert_array_equal(np.asarray(e.X), d.X)


def test_split_holds_out_the_last_rows():
    d = synth_uniform(32, 8, 2, 500, seed=3)
    tr, ev = split(d, 100)
    assert len(tr) == 400 and len(ev) == 100
    np.testing.assert_array_equal(ev.X, d.X[400:])
    np.testing.assert_allclose(ev.codes @ d.F, ev.X, atol=1e-5)
    with pytest.raises(InputError, match="held-out"):
        split(d, 500)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="missing data file"):
        load_data(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="corrupt"):
        load_data(tmp_path / "junk.npz")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(InputError, match="corrupt"):
        load_data(tmp_path / "junk.safetensors")
    np.savez(tmp_path / "nox.npz", Y=np.zeros((3, 2), np.float32))
    with pytest.raises(InputError, match="no array X"):
        load_data(tmp_path / "nox.npz")
    X = np.ones((4, 3), np.float32)
    X[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(InputError, match="NaN or Inf .*row 2"):
        load_data(tmp_path / "nan.npy")
    np.save(tmp_path / "rank.npy", np.ones(5, np.float32))
    with pytest.raises(InputError, match=r"\[samples, d\]"):
        load_data(tmp_path / "rank.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="corrupt or unreadable"):  # never unpickled
        load_data(tmp_path / "obj.npy")
    np.savez(tmp_path / "half.npz", X=X[:2], F=np.ones((2, 3), np.float32), indptr=np.zeros(3, np.int64))
    with pytest.raises(InputError, match="missing indices, values"):
        load_data(tmp_path / "half.npz")
    np.savez(tmp_path / "badcsr.npz", X=np.ones((2, 3), np.float32), F=np.ones((2, 3), np.float32),
             indptr=np.array([0, 1, 2]), indices=np.array([0, 5]), values=np.ones(2, np.float32))
    with pytest.raises(InputError, match="indices must lie in"):
        load_data(tmp_path / "badcsr.npz")
    with pytest.raises(InputError, match="must end in"):
        save_data(tmp_path / "x.csv", Data(X))


def test_toy_activations_truth_is_the_represented_columns(tmp_path):
    from monosemantic.config import ToyTrainConfig
    from monosemantic.experiments.toy import train_toy_run

    cfg = ToyTrainConfig(n=6, m=3, sparsity=[0.9], steps=300, importance_decay=0.9, seed=0)
    run = tmp_path / "toy"
    train_toy_run(cfg, run)
    d = toy_activations(run, samples=3000, seed=1)
    from monosemantic.runs import read_run

    W = read_run(run)[2]["W"][0].double().numpy()  # [m, n]
    keep = d.meta["represented"]
    assert keep == [i for i in range(6) if np.linalg.norm(W[:, i]) > 0.5] and len(keep) >= 1
    np.testing.assert_allclose(d.F, (W[:, keep] / np.linalg.norm(W[:, keep], axis=0)).T, atol=1e-6)
    # X - C @ F is the dropped features' share x_j W_j with x_j in [0, 1): per sample at most sum_j ||W_j||
    resid = np.linalg.norm(d.X - d.codes @ d.F, axis=1)
    dropped = sum(np.linalg.norm(W[:, j]) for j in range(6) if j not in keep)
    assert resid.max() <= dropped + 1e-4
    with pytest.raises(InputError, match="instance"):
        toy_activations(run, instance=3)


def test_cli_data_synth(tmp_path, capsys):
    from monosemantic.cli import main

    out = tmp_path / "s.npz"
    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--kind", "sharkey", "--samples", "300", "--n-features", "64", "--d", "16",
              "--correlation", "0.3", "--out", str(out)])
    assert e.value.code == 0
    d = load_data(out)
    assert d.X.shape == (300, 16) and d.F.shape == (64, 16) and d.meta["correlation"] == 0.3
    with pytest.raises(SystemExit) as e:  # refuses to overwrite, names the problem
        main(["data", "synth", "--samples", "300", "--out", str(out)])
    assert e.value.code == 2 and "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--k", "0", "--samples", "300", "--out", str(tmp_path / "t.npz")])
    assert e.value.code == 2 and "k (expected active features)" in capsys.readouterr().err
