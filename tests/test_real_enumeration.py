"""Reading a real-model dictionary's features: enumeration, the cosine pitfall, the run directory and the browser."""
import json
import re

import numpy as np
import pytest
import scipy.sparse as sp

from monosemantic.dictionary import saelens
from monosemantic.experiments.real import cosine_pitfall, enumerate_features, read_real_run
from monosemantic.real.features import TOP_K, document_runs
from monosemantic.report import browser
from test_cli import run
from test_real import minilm  # noqa: F401  (the fixture: MiniLM loaded once, network refused)

EVIL = ["</script><script>window.__pwned=1</script>", "<img src=x onerror=\"window.__pwned=1\">", "&amp;", "<!--"]


def fake_codes(rows=300, latents=40, seed=0):
    """Non-negative sparse codes [rows, latents] (about 8 active per row, a few latents dead) and token ids."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((rows, latents)) < 0.2, rng.random((rows, latents)) * 3, 0).astype(np.float32)
    dense[:, :3] = 0  # dead latents
    dense[5, 3] = 9.0  # one latent fires once
    dense[:, 4] = 0
    dense[5, 4] = 1.0
    return sp.csr_matrix(dense), dense, rng.integers(0, 30, rows)


def fake_result(rows=300, latents=40, evil=True):
    """A result with the keys the browser reads, built by the experiment's own enumeration on fake codes; some
    rows' token text tries to inject HTML."""
    codes, _, token = fake_codes(rows, latents)
    feats = enumerate_features(codes, token)
    doc = np.repeat(np.arange(rows // 10), 10)
    pos = np.tile(np.arange(10), rows // 10)
    start, stop = document_runs(doc, pos)
    text = [f"tok{t}" if t % 2 else f"##p{t}" for t in token]
    if evil:
        for i, r in enumerate(feats["top_rows"][5][:4]):  # latent 5's top rows carry the attacks
            text[r] = EVIL[i]
    return {"site": "resid.3", "latents": latents, "neuron_site": "mlp.3", "neuron_monosemanticity": 0.1,
            "feature_monosemanticity": 0.2, "monosemanticity": {"top_k": TOP_K},
            "tensors": {"features": feats, "rows": {"doc": doc, "pos": pos, "start": start, "stop": stop}},
            "row_text": text}


def test_top_contexts_are_the_rows_with_the_largest_codes():
    codes, dense, token = fake_codes()
    f = enumerate_features(codes, token)
    for j in range(dense.shape[1]):
        col = dense[:, j]
        want = np.sort(col)[::-1][:TOP_K]
        assert np.allclose(f["top_values"][j], want)
        assert np.allclose(col[f["top_rows"][j]], want)  # the rows named carry those values
        assert f["fired"][j] == (col > 0).sum() == f["hist"][j].sum()
        assert f["max"][j] == pytest.approx(col.max())
        assert f["density"][j] == pytest.approx((col > 0).mean())
    assert (f["fired"][:3] == 0).all() and np.isnan(f["monosemanticity"][:3]).all()
    assert np.isnan(f["monosemanticity"][4])  # fired once: no value
    top = f["top_rows"][3][0]
    assert top == 5 and f["hist"][3][-1] >= 1  # the single 9.0 sits in the last bin


def test_document_runs_keep_contexts_inside_a_document():
    doc = np.array([4, 4, 4, 7, 7, 4, 4])
    pos = np.array([0, 1, 2, 0, 1, 5, 6])  # doc 4 again later, not adjacent: another run
    start, stop = document_runs(doc, pos)
    assert start.tolist() == [0, 0, 0, 3, 3, 5, 5] and stop.tolist() == [3, 3, 3, 5, 5, 7, 7]
    r = {"tensors": {"rows": {"start": start, "stop": stop}}, "row_text": ["a", "##b", "c", "d", "e", "f", "g"]}
    assert browser.context(r, 1, width=5) == (" a", "b", " c")
    assert browser.context(r, 3, width=5) == ("", " d", " e")
    assert browser.token_pieces(["Ġthe", "cat", "Ġsat"]) == [" the", "cat", " sat"]


def test_cosine_pitfall_counts_and_correlation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    X[1] = X[0] * 2  # cosine 1 ...
    codes = (rng.random((60, 50)) < 0.1).astype(np.float32)
    codes[0], codes[1] = 0, 0
    codes[0, :5], codes[1, 5:10] = 1, 1  # ... with disjoint supports
    figures, arrays = cosine_pitfall(X, sp.csr_matrix(codes), np.zeros(8), rng, n=60)
    a, b = np.triu_indices(60, k=1)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = (Xn @ Xn.T)[a, b]
    on = codes != 0
    inter = (on[a] & on[b]).sum(1)
    jac = inter / np.maximum(on[a].sum(1) + on[b].sum(1) - inter, 1)
    assert figures["pairs"] == len(cos) and figures["correlation"] == pytest.approx(np.corrcoef(cos, jac)[0, 1])
    assert figures["high_cos_no_shared"] == ((cos > 0.8) & (inter == 0)).sum() >= 1
    assert figures["low_cos_mostly_shared"] == ((cos < 0.3) & (jac >= 0.5)).sum()
    ex = figures["examples"][0]
    assert ex["kind"].startswith("high cosine") and {ex["row_a"], ex["row_b"]} == {0, 1} and ex["shared"] == 0
    assert len(arrays["cos"]) == len(arrays["jaccard"]) == min(len(cos), 3000)


def _data(page: str) -> dict:
    m = re.search(r"<script type='application/json' id='data'>(.*?)</script>", page, flags=re.S)
    return json.loads(m.group(1))


def test_the_browser_escapes_corpus_text():
    r = fake_result()
    page = browser.page(r)
    for attack in EVIL:
        assert attack not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data and the page's own script
    data = _data(page)
    assert set(EVIL) <= {t.strip() for t in data["text"]}  # the text itself survives, as data
    live = np.flatnonzero(r["tensors"]["features"]["fired"] > 0)
    assert [f[0] for f in data["features"]] == live.tolist()
    markup = page.replace(re.search(r"id='data'>(.*?)</script>", page, flags=re.S).group(1), "")
    assert not re.search(r"(src|href)\s*=|<link|@import|url\(", markup)  # nothing is fetched


# ---------------------------------------------------------------- the whole run, on a tiny slice


@pytest.mark.slow
def test_real_sae_writes_a_run_the_browser_and_summary_read(minilm, tmp_path, capsys):
    from monosemantic.report.html import write_report
    from monosemantic.report.sections.real import BROWSER, SUMMARY_KEYS, section

    out = tmp_path / "run"
    code, stdout, err = run(["real", "sae", "--out", out, "--stores", tmp_path / "stores", "--corpus", "fortunes",
                             "--train-tokens", 512, "--test-tokens", 256, "--expansion", 2, "--k", 8, "--epochs", 1,
                             "--splice-texts", 2, "--no-progress"], capsys)
    assert code == 0 and str(out) in stdout and "monosemanticity median" in err
    res = json.loads((out / "result.json").read_text())
    if saelens.installed():  # SAELens beside ours at equal L0, scored alike
        peer = res["saelens"]
        assert peer["l0"] == pytest.approx(8) and np.isfinite(peer["fvu"]) and "SAELens 6" in err
        assert peer["samples"] == res["samples"] and np.isfinite(peer["embedding_recovered_mean"])
    else:
        assert "pip install" in res["saelens"]["skipped"] and "SAELens: skipped" in err
    assert "tensors" not in res and "row_text" not in res and (out / "features.html").is_file()
    r = read_real_run(out)
    nm = r["tensors"]["neurons"]["monosemanticity"]
    fm = r["tensors"]["features"]["monosemanticity"]
    assert nm.shape == (1536,) and fm.shape == (768,) and len(r["row_text"]) == 256
    assert r["neuron_monosemanticity"] == pytest.approx(np.nanmedian(nm))
    assert r["feature_monosemanticity"] == pytest.approx(np.nanmedian(fm))
    # the neuron store holds exactly the test store's rows
    assert (tmp_path / "stores" / "store-test-mlp.3" / "manifest.json").is_file()
    sec, summary = section(r)
    assert set(summary["real_model"]) == set(SUMMARY_KEYS)
    assert summary["real_model"]["neuron_monosemanticity"] == r["neuron_monosemanticity"]
    assert summary["real_model"]["feature_monosemanticity"] == r["feature_monosemanticity"]
    page = write_report(tmp_path / "demo" / "report.html", "t", [sec])
    assert f'href="{BROWSER}"' in page.read_text() and (tmp_path / "demo" / BROWSER).is_file()
    # the browser from the CLI equals the one written with the run
    code, stdout, _ = run(["real", "browse", out, "--out", tmp_path / "b.html"], capsys)
    assert code == 0 and (tmp_path / "b.html").read_text() == (out / "features.html").read_text()
    # bad input: one line, exit 2
    (out / "rows.safetensors").unlink()
    for bad in (out, tmp_path / "stores", tmp_path / "nothing"):
        code, _, err = run(["real", "browse", bad], capsys)
        assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    code, _, err = run(["real", "sae", "--out", tmp_path / "run3", "--stores", tmp_path / "stores", "--saelens", "no",
                        "--no-progress"], capsys)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    code, _, err = run(["real", "sae", "--out", tmp_path / "run2", "--stores", tmp_path / "file", "--corpus",
                        "fortunes", "--train-tokens", 64, "--test-tokens", 64, "--no-progress"], capsys)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_saelens_on_without_saelens_is_one_line_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(saelens, "installed", lambda: False)
    code, _, err = run(["real", "sae", "--out", tmp_path / "run", "--stores", tmp_path / "stores", "--saelens", "on",
                        "--no-progress"], capsys)
    assert code == 2 and err.startswith("error:") and "pip install" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "stores").exists() and not (tmp_path / "run").exists()


def test_an_empty_stores_is_one_line_before_any_capture(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # '' once put the stores in the working directory
    code, _, err = run(["real", "sae", "--out", tmp_path / "run", "--stores", "", "--saelens", "off",
                        "--no-progress"], capsys)
    assert code == 2 and err.startswith("error: output path must name") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_seed_beyond_64_bits_is_one_line(tmp_path, capsys):
    code, _, err = run(["real", "sae", "--out", tmp_path / "run", "--stores", tmp_path / "stores", "--seed", 2**64,
                        "--no-progress"], capsys)
    assert code == 2 and err.startswith("error: seed") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "stores").exists()


def test_too_few_train_tokens_are_refused_before_the_capture(tmp_path, capsys):
    code, _, err = run(["real", "sae", "--out", tmp_path / "run", "--stores", tmp_path / "stores", "--train-tokens", 64,
                        "--no-progress"], capsys)
    assert code == 2 and "fewer than one SAE batch" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "stores").exists()
