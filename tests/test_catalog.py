"""Feature enumeration (`catalog.list_features`) and the semantic dictionary (`catalog.describe_sample`).

With the true dictionary as the atoms, OMP recovers every sample's support and codes exactly on this data
(96 features in d = 64, about 3 active: well inside compressed sensing's regime), so the enumeration must give
the true features' frequencies, activations and top samples exactly; an SAE is checked against its own dense codes.
"""
import json

import numpy as np
import pytest
import scipy.sparse as sp

from monosemantic.errors import InputError
import monosemantic.experiments.catalog as catalog
from monosemantic.experiments.catalog import describe_sample, list_features, nearest_features
from monosemantic.cli import main
from monosemantic.data import load_data, save_data, synth_uniform
from monosemantic.dictionary import SparseAutoencoder, load
from test_cli import run


@pytest.fixture(scope="module")
def small():
    return synth_uniform(n_features=96, d=64, k=3, samples=600, seed=1)


@pytest.fixture(scope="module")
def sae(small):
    return SparseAutoencoder(arch="topk", n_latents=96, k=3, samples=60_000, batch=128, seed=0).fit(small.X)


def top_of(C: np.ndarray, a: int, top: int):
    """The reference: indices and values of column a's `top` largest non-zero entries, from the dense codes."""
    fired = np.flatnonzero(C[:, a])
    order = fired[np.argsort(-C[fired, a], kind="stable")][:top]
    return order.tolist(), C[order, a]


def test_the_true_dictionary_enumerates_the_true_features(small):
    C = small.codes.toarray()  # [samples, n_features], the truth (tiny here)
    rows = list_features(small.F, small.X, small.F, small.codes, top=4)
    assert [r["atom"] for r in rows] == list(range(96))
    for r in rows:
        a, fired = r["atom"], C[:, r["atom"]] != 0
        assert r["count"] == fired.sum() and r["frequency"] == fired.mean() == r["true_frequency"]
        assert r["nearest_feature"] == a and r["cosine"] == pytest.approx(1, abs=1e-6)
        assert r["norm"] == pytest.approx(1, abs=1e-6)
        # OMP's codes equal the true ones to float32 precision (relative tolerance 1e-6)
        assert r["mean_activation"] == pytest.approx(C[fired, a].mean(), abs=1e-5)
        assert r["max_activation"] == pytest.approx(C[:, a].max(), abs=1e-5)
        idx, vals = top_of(C, a, 4)
        assert r["top_samples"] == idx and np.allclose(r["top_values"], vals, atol=1e-5)
    # on 50 samples many features fire fewer than 4 times: their lists are short, never padded
    rows = list_features(small.F, small.X[:50], top=4)
    assert [len(r["top_samples"]) for r in rows] == [min(r["count"], 4) for r in rows]
    assert min(r["count"] for r in rows) == 0 and rows[0]["nearest_feature"] is None
    assert any(0 < r["count"] < 4 for r in rows) and any(r["count"] > 4 for r in rows)
    assert all(r["mean_activation"] is None is r["max_activation"] for r in rows if r["count"] == 0)


def test_permuted_and_scaled_atoms_find_their_features(small):
    perm = np.random.default_rng(0).permutation(96)
    A = 2.0 * small.F[perm]  # atom j is feature perm[j], twice as long: its codes are half the true ones
    rows = list_features(A, small.X, small.F, small.codes, top=3)
    C = small.codes.toarray()
    for r in rows:
        f = perm[r["atom"]]
        assert r["nearest_feature"] == f and r["cosine"] == pytest.approx(1, abs=1e-6)
        assert r["norm"] == pytest.approx(2, abs=1e-5) and r["max_activation"] == pytest.approx(C[:, f].max() / 2, abs=1e-5)
        assert r["top_samples"] == top_of(C, f, 3)[0]


def test_sign_free_dictionaries_match_by_absolute_cosine(small):
    A = small.F[:5].copy()
    A[2] *= -1  # a PCA-like atom may point against its feature
    near, cos = nearest_features(A, small.F, sign_free=True)
    assert near.tolist() == [0, 1, 2, 3, 4] and cos[2] == pytest.approx(-1, abs=1e-6)
    near, cos = nearest_features(A, small.F)  # signed (the default, as recovery.py): it matches something else
    assert near[2] != 2 and cos[2] < 0.9


def test_an_sae_is_enumerated_from_its_own_codes(small, sae):
    C = sae.transform(small.X).toarray()  # [samples, latents]: the reference, dense
    rows = list_features(sae, small.X, small.F, small.codes, top=5)
    near, cos = nearest_features(sae.components_, small.F)
    for r in rows:
        a, fired = r["atom"], C[:, r["atom"]] != 0
        assert r["count"] == fired.sum() and r["nearest_feature"] == near[a] and r["cosine"] == pytest.approx(cos[a])
        assert r["mean_activation"] == (pytest.approx(C[fired, a].mean(), rel=1e-6) if fired.any() else None)
        assert r["top_samples"] == top_of(C, a, 5)[0]
    # trained on 600 samples this SAE finds 61-71 of the 96 features at cosine > 0.9 (seeds 0-2); those atoms fire
    # about as often as their features: median |frequency - true| 0.005-0.007 against frequencies of ~0.033
    good = [r for r in rows if r["cosine"] > 0.9]
    assert len(good) >= 48
    assert np.median([abs(r["frequency"] - r["true_frequency"]) for r in good]) < 0.012


@pytest.mark.parametrize("which", ["omp", "sae"])
def test_streaming_in_chunks_gives_the_same_result(small, sae, which, monkeypatch):
    D = small.F if which == "omp" else sae
    whole = list_features(D, small.X, small.F, small.codes, top=6, chunk=len(small.X))
    chunked = list_features(D, small.X, small.F, small.codes, top=6, chunk=37)
    monkeypatch.setattr(catalog, "CELLS", 7 * 96)  # the cap on dense chunk cells: 7 samples at a time
    capped = list_features(D, small.X, small.F, small.codes, top=6)
    # the SAE's float32 encoder may round differently at another batch size (BLAS blocking, threads): its values
    # agree to float32 precision; the indices, counts and OMP's float64 codes agree exactly
    floats = ("mean_activation", "max_activation", "top_values")
    rel = 1e-12 if which == "omp" else 1e-5
    for a, b, c in zip(whole, chunked, capped):
        for r in (b, c):
            assert {k: v for k, v in r.items() if k not in floats} == {k: v for k, v in a.items() if k not in floats}
            for k in floats:
                assert r[k] == pytest.approx(a[k], rel=rel)  # sums in another order


def test_describe_lists_exactly_the_true_active_features(small):
    C = small.codes
    for i in range(40):
        d = describe_sample(small.F, small.X, i, small.F, small.codes)
        true = dict(zip(C[i].indices.tolist(), C[i].data.tolist()))
        assert {f["atom"]: f["code"] for f in d["features"]} == pytest.approx(true, abs=1e-5)
        assert {t["feature"]: t["value"] for t in d["true_features"]} == true
        assert [t["value"] for t in d["true_features"]] == sorted(true.values(), reverse=True)
        assert all(f["nearest_feature"] == f["atom"] for f in d["features"])
        w = [f["weight"] for f in d["features"]]
        assert w == sorted(w, reverse=True) and d["active"] == len(true)
        if true:
            assert d["rel_error"] < 1e-5 and sum(f["share"] for f in d["features"]) == pytest.approx(1)
    x0 = np.zeros((1, 64), np.float32)
    assert describe_sample(small.F, x0, 0) == {"sample": 0, "norm": 0.0, "active": 0, "rel_error": None,
                                               "features": [], "true_features": None}


def test_describe_an_sae_sample(small, sae):
    i = 5
    d = describe_sample(sae, small.X, i)
    codes = sae.transform(small.X[i:i + 1])
    x_hat = sae.inverse_transform(codes)[0]
    assert sorted(f["atom"] for f in d["features"]) == sorted(codes.indices.tolist())
    assert d["rel_error"] == pytest.approx(np.linalg.norm(small.X[i] - x_hat) / np.linalg.norm(small.X[i]), rel=1e-4)
    F = sae.components_
    for f in d["features"]:
        assert f["weight"] == pytest.approx(abs(f["code"]) * np.linalg.norm(F[f["atom"]]), rel=1e-6)
    assert sum(f["share"] for f in d["features"]) == pytest.approx(1)
    assert d["true_features"] is None and d["features"][0]["nearest_feature"] is None


@pytest.mark.parametrize("call, words", [
    (lambda s: list_features(s.F, s.X, top=0), "top must be"),
    (lambda s: list_features(s.F, s.X[:, :10]), "d=10"),
    (lambda s: list_features(s.F, s.X, s.F[:, :10]), "true features have d=10"),
    (lambda s: list_features(s.F, s.X, s.F, s.codes[:5]), "true codes are"),
    (lambda s: list_features(np.zeros((3, 64)), s.X), "zero norm"),
    (lambda s: describe_sample(s.F, s.X, 600), r"sample must lie in \[0, 600\)"),
    (lambda s: describe_sample(s.F, s.X, -1), "sample must lie"),
])
def test_bad_input(small, call, words):
    with pytest.raises(InputError, match=words):
        call(small)


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory):
    """A data file and an SAE directory trained on it by `sae train` (which records the data path)."""
    tmp = tmp_path_factory.mktemp("catalog")
    save_data(tmp / "d.npz", small)
    with pytest.raises(SystemExit) as e:
        main(["sae", "train", "--data", str(tmp / "d.npz"), "--out", str(tmp / "sae"), "--latents", "48", "--k", "3",
              "--samples", "20000", "--batch", "128", "--no-progress"])
    assert e.value.code == 0
    return tmp


def test_cli_list_and_describe_write_json(trained, small, capsys):
    out = trained / "list"
    code, stdout, _ = run(["features", "list", trained / "sae", "--top", 3, "--limit", 7, "--out", out], capsys)
    assert code == 0 and stdout.strip().splitlines()[-1] == str(out)
    rows = json.loads((out / "features.json").read_text())
    data = load_data(trained / "d.npz")  # F as read back from the file (renormalised), as the CLI sees it
    assert rows == json.loads(json.dumps(list_features(load(trained / "sae"), data.X, data.F, data.codes, top=3)))
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["atom", "freq", "mean"] and lines[8].startswith("... 41 more atoms")
    freqs = [float(line.split()[1]) for line in lines[1:8]]
    assert freqs == sorted(freqs, reverse=True) and freqs[0] == max(r["frequency"] for r in rows)
    res = json.loads((out / "result.json").read_text())
    assert res["atoms"] == 48 and res["samples"] == 600 and res["truth"] is True and res["wall_s"] > 0
    assert res["l0"] == pytest.approx(sum(r["count"] for r in rows) / 600)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"] == str(trained / "d.npz") and cfg["top"] == 3 and "torch" in cfg["environment"]

    code, stdout, _ = run(["features", "describe", trained / "sae", "--sample", 9, "--data", trained / "d.npz",
                           "--out", trained / "desc"], capsys)
    d = json.loads((trained / "desc" / "result.json").read_text())
    want = describe_sample(load(trained / "sae"), data.X, 9, data.F, data.codes)
    assert code == 0 and d["features"] == json.loads(json.dumps(want["features"]))
    assert d["true_features"] == want["true_features"] and "true active features:" in stdout
    code, stdout, _ = run(["features", "describe", trained / "sae", "--sample", 9, "--json"], capsys)
    assert code == 0 and json.loads(stdout)["features"] == d["features"]
    code, stdout, _ = run(["features", "list", trained / "sae", "--top", 3, "--json"], capsys)
    assert code == 0 and json.loads(stdout) == rows
    # a bare F file needs --data (it records none); with it, the true dictionary's own catalogue
    code, stdout, _ = run(["features", "list", trained / "d.npz", "--data", trained / "d.npz", "--limit", 0], capsys)
    assert code == 0 and len(stdout.splitlines()) == 1 + 96


def test_cli_bad_input_is_one_line_and_exit_2(trained, capsys, tmp_path):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "cfg.json").write_text("{not json")
    save_data(tmp_path / "wide.npz", synth_uniform(8, 10, 2, 20, seed=0))
    sae, d = trained / "sae", trained / "d.npz"
    o = tmp_path / "o"
    cases = [
        (["list", tmp_path / "missing", "--data", d], "missing dictionary"),
        (["list", tmp_path / "corrupt", "--data", d], "corrupt JSON"),
        (["list", sae, "--data", tmp_path / "wide.npz"], "has d=10 but the dictionary"),
        (["list", sae, "--top", 0], "top"),
        (["list", sae, "--limit", -1], "limit"),
        (["list", sae, "--sort", "size"], "sort"),
        (["list", d], "records no data file"),
        (["list", sae, "--out", trained / "list"], "output directory exists"),
        (["describe", sae, "--sample", 600], "sample must lie in [0, 600)"),
        (["describe", sae, "--sample", -1], "sample"),
        (["describe", sae], "--sample"),
    ]
    for args, words in cases:
        code, stdout, err = run(["features", *args, *([] if "--out" in args else ["--out", o])], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1 and err.startswith("error:"), (args, err)
        assert not o.exists()
