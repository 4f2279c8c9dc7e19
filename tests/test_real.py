"""The real model (offline), the corpus, the sharded activation store and its reader."""
import json
import socket

import numpy as np
import pytest
import torch
from torch import nn

from monosemantic.data import load_data
from monosemantic.dictionary import SparseAutoencoder
from monosemantic.dictionary.batches import Batches
from monosemantic.errors import InputError
from monosemantic.real import corpus as C
from monosemantic.real import model as M
from monosemantic.real import store as S
from test_cli import run


def _no_network(*args, **kw):
    raise AssertionError("network access attempted")


@pytest.fixture(scope="module")
def minilm():
    """The packaged MiniLM, loaded with every socket connection and name lookup refused (and cached for the
    store's captures)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "getaddrinfo", _no_network)
        S._LOADED.clear()
        m = S.loaded(M.MINILM)
        with M.capture(m.model, "resid.3") as got:
            m.model(**m.tokenizer(["no network was touched"], return_tensors="pt"))
    assert got["acts"].shape == (1, 6, 384)  # [CLS] no network was touched [SEP]
    return m


@pytest.fixture
def text_corpus(tmp_path):
    """A small fortune-format corpus file (a few hundred tokens)."""
    entries = [f"Fortune number {i}: " + " ".join(["the quick brown fox jumps over the lazy dog"] * (1 + i % 4))
               for i in range(24)]
    p = tmp_path / "small.txt"
    p.write_text("\n%\n".join(entries + entries[:3]) + "\n")  # three duplicates
    return p


# ---------------------------------------------------------------- corpus


def test_fortune_files_skip_offensive_and_indexes():
    files = C.fortune_files()
    assert len(files) >= 10
    assert not [f for f in files if f.name.endswith("-o") or f.suffix == ".dat"]
    assert {"fortunes", "limerick", "murphy", "startrek", "zippy"} <= {f.name for f in files}


def test_corpus_splits_deduplicates_and_fixes_the_split(text_corpus, tmp_path):
    c = C.load(text_corpus)
    assert len(c) == 24  # the three repeated entries dropped
    assert C.split_fortunes("a\n%\nb\n%\n") == ["a\n", "\nb\n", "\n"]
    # the split is a function of the text: the same document is in the same split in any corpus
    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(c.docs[5:] + ["an extra document of some length"]))
    c2 = C.load(other)
    for d in c.docs[5:]:
        assert c2.test[c2.docs.index(d)] == c.test[c.docs.index(d)]
    train, test = c.ids("train"), c.ids("test")
    assert sorted(train + test) == list(range(len(c))) and not set(train) & set(test)
    fortunes = C.load("fortunes")
    share = sum(fortunes.test) / len(fortunes)
    assert len(fortunes) > 15_000 and abs(share - C.TEST_PERCENT / 100) < 0.02


def test_bad_corpora_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n%\n  \n")
    with pytest.raises(InputError, match="no document"):
        C.load(empty)
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\x01\x02text")
    with pytest.raises(InputError, match="not a text file"):
        C.load(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait, a fine drink".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        C.load(latin)
    with pytest.raises(InputError, match="unknown corpus"):
        C.load("no-such-corpus")


@pytest.mark.slow
def test_the_corpus_holds_a_million_train_tokens(minilm):
    c = C.load("all")
    ids = c.ids("train")
    n = sum(len(t) for t in minilm.tokenizer([c.docs[i] for i in ids], add_special_tokens=False)["input_ids"])
    assert n >= 1_000_000


# ---------------------------------------------------------------- model and sites


class Block(nn.Module):
    def __init__(self, d=8, h=32):
        super().__init__()
        self.up, self.down, self.attn = nn.Linear(d, h), nn.Linear(h, d), nn.Linear(d, d)

    def forward(self, x):
        return x + self.down(torch.relu(self.up(x + self.attn(x))))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def test_sites_on_any_module():
    torch.manual_seed(0)
    net = Tiny()
    assert list(M.sites(net)) == ["resid.0", "mlp.0", "resid.1", "mlp.1"]
    x = torch.randn(2, 3, 8)
    with M.capture(net, "mlp.1") as got:
        net(x)
    b0 = net.blocks[0](x)
    want = torch.relu(net.blocks[1].up(b0 + net.blocks[1].attn(b0)))
    assert torch.allclose(got["acts"], want)
    with M.capture(net, "resid.0", stop=True) as got:
        net(x)
    assert torch.allclose(got["acts"], b0)
    with M.replace(net, "resid.0", torch.zeros_like):
        y = net(x)
    assert torch.allclose(y, net.blocks[1](torch.zeros_like(b0)))
    with pytest.raises(InputError, match="resid.0, mlp.0, resid.1, mlp.1"):
        M.site(net, "resid.7")

    class Named(nn.Module):  # a model that names its own sites
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def named_sites(self):
            return {"hidden": (self.lin, "output")}

    assert list(M.sites(Named())) == ["hidden"]


def test_minilm_sites_match_its_hidden_states(minilm):
    net, tok = minilm.model, minilm.tokenizer
    assert list(M.sites(net)) == [f"{k}.{i}" for i in range(6) for k in ("resid", "mlp")]
    enc = tok(["The cat sat on the mat."], return_tensors="pt")
    with torch.no_grad():
        out = net(**enc, output_hidden_states=True)
        with M.capture(net, "resid.3") as r, M.capture(net, "mlp.2") as h:
            net(**enc)
        mlp = net.encoder.layer[2].intermediate(net.encoder.layer[2].attention(out.hidden_states[2])[0])
    assert torch.allclose(r["acts"], out.hidden_states[4], atol=1e-5)  # hidden_states[0] is the embedding
    assert h["acts"].shape == (1, enc["input_ids"].shape[1], 1536) and torch.allclose(h["acts"], mlp, atol=1e-5)


def test_a_directory_that_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        M.load(tmp_path / "nope")
    with pytest.raises(InputError, match="no config.json"):
        M.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot load a model"):
        M.load(tmp_path)


@pytest.mark.slow
def test_any_local_decoder_directory_loads_and_captures(tmp_path, minilm):
    """A GPT-2-style decoder saved locally (random weights; MiniLM's tokenizer files beside it)."""
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(minilm.tokenizer))
              ).save_pretrained(tmp_path)
    minilm.tokenizer.save_pretrained(tmp_path)
    m = M.load(tmp_path)
    assert list(M.sites(m.model)) == ["resid.0", "mlp.0", "resid.1", "mlp.1"]
    with M.capture(m.model, "mlp.1") as got:
        m.model(**m.tokenizer(["hello there"], return_tensors="pt", return_token_type_ids=False))
    assert got["acts"].shape[-1] == 4 * 32


# ---------------------------------------------------------------- store


def _rows_of(minilm, corpus, store, site="resid.3"):
    """The store's rows recomputed one document at a time from the model's own hidden states."""
    want = np.empty_like(store.X[:])
    for doc in np.unique(store.doc):
        rows = np.nonzero(store.doc == doc)[0]
        enc = minilm.tokenizer([corpus.docs[doc]], return_tensors="pt", truncation=True, max_length=S.CONTEXT + 2)
        with torch.no_grad(), M.capture(minilm.model, site) as got:
            minilm.model(**enc)
        ids = enc["input_ids"][0, 1:-1]
        assert (ids[store.pos[rows]].numpy() == store.token[rows]).all()
        want[rows] = got["acts"][0, 1 + store.pos[rows]].numpy()
    return want


def test_capture_writes_a_store_whose_rows_are_the_models(minilm, text_corpus, tmp_path):
    out = tmp_path / "store"
    man = S.capture(M.MINILM, text_corpus, "resid.3", 300, out, shard_tokens=128, context=S.CONTEXT)
    assert man["complete"] and man["n_shards"] == 3 and man["rows_now"] == 300
    store = S.Store(out)
    assert store.X.shape == (300, 384) and len(store.doc) == len(store.pos) == len(store.token) == 300
    corpus = C.load(text_corpus)
    assert not any(corpus.test[d] for d in np.unique(store.doc))  # train split only
    assert np.allclose(store.X[:], _rows_of(minilm, corpus, store), atol=1e-4)
    assert store.token_text([0])[0] == minilm.tokenizer.convert_ids_to_tokens([int(store.token[0])])[0]
    # load_data hands the estimators the store's rows without reading them into memory
    data = load_data(out)
    assert isinstance(data.X, S.ShardedRows) and data.meta["site"] == "resid.3"
    assert Batches(data.X, 64).X is data.X


def test_windows_cut_long_documents(minilm, tmp_path):
    doc = tmp_path / "long.txt"
    doc.write_text(" ".join(f"word{i}" for i in range(200)))  # one document of several hundred tokens
    out = tmp_path / "store"
    S.capture(M.MINILM, doc, "resid.1", 400, out, split="all", context=64)
    store = S.Store(out)
    assert (store.pos == np.arange(400)).all()
    # the first window's rows are the model's on the first 64 tokens alone
    ids = [int(t) for t in store.token[:64]]
    with torch.no_grad(), M.capture(minilm.model, "resid.1") as got:
        minilm.model(input_ids=torch.tensor([[101] + ids + [102]]))
    assert np.allclose(store.X[:64], got["acts"][0, 1:-1].numpy(), atol=1e-4)


def test_capture_resumes_after_a_kill_without_duplicates(minilm, text_corpus, tmp_path):
    whole = tmp_path / "whole"
    S.capture(M.MINILM, text_corpus, "mlp.2", 300, whole, shard_tokens=100)
    out = tmp_path / "killed"

    def killed_after_one(fn, jobs):
        for i, job in enumerate(jobs):
            if i == 1:
                raise KeyboardInterrupt
            yield fn(*job)

    with pytest.raises(KeyboardInterrupt):
        S.capture(M.MINILM, text_corpus, "mlp.2", 300, out, shard_tokens=100, mapper=killed_after_one)
    man = json.loads((out / "manifest.json").read_text())
    assert list(man["shards"]) == ["0"] and not man["complete"]
    with pytest.raises(InputError, match="incomplete"):
        S.Store(out)
    # a kill between a shard's files and the manifest: the files are there, the manifest does not list them
    S.capture_shard(*_job(out, text_corpus, 1))
    again = S.capture(M.MINILM, text_corpus, "mlp.2", 300, out, shard_tokens=100)
    assert again["captured_now"] == 2 and again["complete"]
    a, b = S.Store(whole), S.Store(out)
    assert np.array_equal(a.X[:], b.X[:]) and np.array_equal(a.doc, b.doc) and np.array_equal(a.pos, b.pos)
    assert S.capture(M.MINILM, text_corpus, "mlp.2", 300, out, shard_tokens=100)["captured_now"] == 0
    with pytest.raises(InputError, match="other settings"):
        S.capture(M.MINILM, text_corpus, "mlp.2", 200, out, shard_tokens=100)
    S.Store(out)  # still readable


def _job(out, corpus_path, i):
    c = C.load(corpus_path)
    plan = S.plan(c, S.loaded(M.MINILM).tokenizer, 300, shard_tokens=100)
    return (M.MINILM, "mlp.2", [c.docs[d] for d, _, _ in plan[i]], plan[i], str(out), i)


def test_missing_or_truncated_shards_are_one_line_errors(minilm, text_corpus, tmp_path, capsys):
    out = tmp_path / "store"
    S.capture(M.MINILM, text_corpus, "resid.0", 300, out, shard_tokens=100)
    shard = out / "shard-00001.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    code, _, err = run(["sae", "train", "--data", out, "--out", tmp_path / "sae", "--latents", 64, "--k", 4,
                        "--samples", 1000, "--no-progress"], capsys)
    assert code == 2 and err.count("\n") == 1 and "shard 1" in err and "truncated" in err
    shard.unlink()
    with pytest.raises(InputError, match="shard 1 is missing"):
        S.Store(out)
    (out / "shard-00002.rows.safetensors").write_bytes(b"garbage")
    shard.write_bytes(data)
    with pytest.raises(InputError, match="unreadable"):
        S.Store(out)
    # capture again repairs what it can: the store is readable once more
    (out / "shard-00002.rows.safetensors").unlink()
    assert S.capture(M.MINILM, text_corpus, "resid.0", 300, out, shard_tokens=100)["captured_now"] == 1
    assert len(S.Store(out)) == 300


def test_cli_capture_and_sae_train_on_the_store(minilm, text_corpus, tmp_path, capsys):
    out = tmp_path / "store"
    base = ["real", "capture", "--corpus", text_corpus, "--tokens", 300, "--no-progress"]
    code, stdout, err = run(base + ["--out", out, "--site", "resid.9"], capsys)
    assert code == 2 and err.count("\n") == 1 and "resid.0, mlp.0" in err and not out.exists()
    code, stdout, err = run(base + ["--out", out, "--site", "resid.2"], capsys)
    assert code == 0 and stdout.strip() == str(out) and "300 rows of d=384" in err
    sae = tmp_path / "sae"
    code, stdout, err = run(["sae", "train", "--data", out, "--out", sae, "--latents", 64, "--k", 4,
                             "--samples", 2000, "--batch", 64, "--no-progress"], capsys)
    assert code == 0 and (sae / "sae_weights.safetensors").is_file()
    notmodel = tmp_path / "notmodel"
    notmodel.mkdir()
    code, _, err = run(base + ["--out", tmp_path / "s2", "--model", notmodel], capsys)
    assert code == 2 and err.count("\n") == 1 and "config.json" in err
    code, _, err = run(base + ["--out", tmp_path / "s3", "--corpus", tmp_path / "empty.txt"], capsys)
    assert code == 2 and "unknown corpus" in err  # (it does not exist)
    (tmp_path / "x.bin").write_bytes(b"\x00\xff")
    code, _, err = run(base + ["--out", tmp_path / "s3", "--corpus", tmp_path / "x.bin"], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a text file" in err


def test_embedding_recovered_is_one_for_the_identity_and_zero_for_the_ablation(minilm, text_corpus, tmp_path):
    from monosemantic.real.splice import embedding_recovered

    out = tmp_path / "store"
    S.capture(M.MINILM, text_corpus, "resid.2", 300, out, shard_tokens=300)
    store = S.Store(out)
    mean = torch.from_numpy(store.mean())
    assert np.allclose(mean.numpy(), store.X[:].mean(0), atol=1e-5)
    texts = C.load(text_corpus).docs[:6] + ["A short one.", "Entirely different words here, about cats."]
    same = embedding_recovered(minilm, "resid.2", texts, lambda x: x, mean)
    assert same["cos_splice"] == pytest.approx(1, abs=1e-5) and same["embedding_recovered"] == pytest.approx(1)
    assert same["cos_zero_ablation"] < 0.95 and same["cos_mean_ablation"] < 0.95
    zero = embedding_recovered(minilm, "resid.2", texts, torch.zeros_like, mean)
    assert zero["embedding_recovered"] == pytest.approx(0, abs=1e-5)
    assert zero["cos_zero_ablation"] == pytest.approx(same["cos_zero_ablation"], abs=1e-6)
    noisy = embedding_recovered(minilm, "resid.2", texts, lambda x: x + 0.3 * x.std() * torch.randn(
        x.shape, generator=torch.Generator().manual_seed(0)), mean)
    assert 0 < noisy["embedding_recovered"] < 1 and 0 < noisy["embedding_recovered_mean"] < 1


# ---------------------------------------------------------------- the reader


def _parts(sizes=(100, 37, 250), d=5):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, d)).astype(np.float32) for n in sizes]


def test_sharded_rows_index_like_one_array():
    parts = _parts()
    X, whole = S.ShardedRows(parts), np.concatenate(parts)
    assert X.shape == whole.shape and len(X) == len(whole)
    for key in (slice(None), slice(90, 140), slice(136, 138), slice(5, 300, 7), 0, 137, -1,
                np.array([0, 136, 137, 386, 5]), np.array([-1, 3])):
        assert np.array_equal(X[key], whole[key])
    assert np.array_equal(X[10:20, 2], whole[10:20, 2]) and np.array_equal(np.asarray(X), whole)
    with pytest.raises(IndexError):
        X[np.array([387])]


def test_batches_read_a_store_as_they_read_one_memmap(tmp_path, monkeypatch):
    """The store's reader is the memory-mapped array's: the same seeded, resumable, block-shuffled batches."""
    import monosemantic.dictionary.batches as B

    monkeypatch.setattr(B, "BLOCK", 64)  # several blocks over a small array
    parts = _parts()
    np.save(tmp_path / "x.npy", np.concatenate(parts))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    a, b = Batches(mm, 32, seed=3), Batches(S.ShardedRows(parts), 32, seed=3)
    for _ in range(30):  # more than one pass
        assert torch.equal(next(a), next(b))
    assert torch.equal(a.sample(50), b.sample(50))
    batch = next(Batches(S.ShardedRows(parts), 64, seed=1))
    # a batch mixes rows from across its block, not one contiguous run
    assert len({tuple(r) for r in batch.numpy()}) == 64


def test_an_sae_trains_on_the_store_rows():
    parts = _parts((600, 500), d=16)
    sae = SparseAutoencoder("topk", 32, k=4, samples=4000, batch=100).fit(S.ShardedRows(parts))
    assert sae.components_.shape == (32, 16) and sae.score(np.concatenate(parts)) > 0.2


@pytest.mark.slow
def test_capture_on_a_local_ray_equals_the_local_capture(minilm, text_corpus, tmp_path):
    from monosemantic.experiments.real import CaptureConfig, capture_run

    local = capture_run(CaptureConfig(corpus=str(text_corpus), tokens=300, shard_tokens=100), tmp_path / "local")
    ray = capture_run(CaptureConfig(corpus=str(text_corpus), tokens=300, shard_tokens=100, backend="ray",
                                    workers=2), tmp_path / "ray")
    assert ray["captured_now"] == 3 and ray["rows"] == local["rows"] == 300
    a, b = S.Store(tmp_path / "local"), S.Store(tmp_path / "ray")
    assert np.allclose(a.X[:], b.X[:], atol=1e-5) and np.array_equal(a.token, b.token)


@pytest.mark.slow
def test_the_quick_demo_scores_a_dictionary_on_the_store(minilm):
    from monosemantic.experiments.real import demo
    from monosemantic.report.sections.real import SUMMARY_KEYS, section

    r = demo(quick=True, progress=False)
    assert r["tokens"] == 2048 and r["latents"] == 8 * 384 and r["l0"] == pytest.approx(r["k"])
    assert 0 < r["fvu"] < 1 and 0 <= r["dead"] < r["latents"]
    h = r["density"]
    assert sum(h["counts"]) + h["dead"] == r["latents"] and h["dead"] == r["dead"]
    assert r["cos_zero_ablation"] < r["cos_splice"] <= 1 and 0 < r["embedding_recovered"] < 1
    sec, summary = section(r)
    assert set(summary["real_model"]) == set(SUMMARY_KEYS) and any("<img" in p for p in sec.parts)
