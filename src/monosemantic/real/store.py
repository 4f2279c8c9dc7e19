"""The activation store: a model's activations at one site over a corpus, on disk in shards, read as one array.

Layout of a store directory:

* `manifest.json`  what was captured (model, site, corpus, split, tokens, shard size, context, d, a hash of the
                   plan) and the finished shards with their row counts. Rewritten atomically after each shard.
* `shard-NNNNN.npy`  `X: [rows, d]` float32, memory-mapped when read.
* `shard-NNNNN.rows.safetensors`  per row: `doc` (document id in the corpus), `pos` (token index inside that
                   document), `token` (token id) — all int32, `[rows]`.
* `vocab.json`     token id -> token text.

Capture is planned before any model runs: documents of the split in corpus order (`Corpus.ids`) are cut into
pieces (the last one truncated so that exactly `tokens` tokens are taken) and grouped into shards of
`shard_tokens` tokens. Each shard is one job (a Ray task on the Ray backend); its files are written atomically
and only then does the manifest list it. A rerun with the same settings skips the listed shards and captures the
others, so a killed capture resumes without a duplicated or a dropped row. One shard is in memory at a time.

Documents are fed in fixed windows of `context` tokens (from the document's start), each with the tokenizer's
special tokens around it (BERT's [CLS] ... [SEP]); the special tokens' activations are not stored. A piece cut
by a shard boundary or by the token budget still runs its whole window, so a row's activation does not depend
on the sharding.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from monosemantic.errors import InputError
from monosemantic.real import corpus as corpus_mod
from monosemantic.real import model as model_mod
from monosemantic.runs import atomic_file, environment, read_json, write_json

FORMAT = "monosemantic-activation-store"
VERSION = 1
MANIFEST = "manifest.json"
VOCAB = "vocab.json"
SHARD_TOKENS = 32_768
CONTEXT = 128
BATCH_TOKENS = 4096  # padded tokens per forward pass
PLAN_BATCH = 512  # documents tokenized at once while planning

_LOADED: dict[str, model_mod.Loaded] = {}  # per process: a Ray worker loads the model once for all its shards


def loaded(name: str) -> model_mod.Loaded:
    key = str(model_mod.model_dir(name).resolve())
    if key not in _LOADED:
        _LOADED[key] = model_mod.load(name)
    return _LOADED[key]


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"


# ---------------------------------------------------------------- planning


def plan(corpus: corpus_mod.Corpus, tokenizer, tokens: int, split: str = "train",
         shard_tokens: int = SHARD_TOKENS) -> list[list[tuple[int, int, int]]]:
    """Shards of pieces (doc id, start, stop) in token offsets of the document, `tokens` tokens in all."""
    if tokens < 1 or shard_tokens < 1:
        raise InputError(f"tokens and shard size must be positive, got {tokens} and {shard_tokens}")
    ids = corpus.ids(split)
    shards, current, filled, total = [], [], 0, 0
    for s in range(0, len(ids), PLAN_BATCH):
        chunk = ids[s:s + PLAN_BATCH]
        lengths = [len(t) for t in tokenizer([corpus.docs[i] for i in chunk], add_special_tokens=False)["input_ids"]]
        for doc, n in zip(chunk, lengths):
            start = 0
            while start < n and total < tokens:
                take = min(n - start, shard_tokens - filled, tokens - total)
                current.append((doc, start, start + take))
                start, filled, total = start + take, filled + take, total + take
                if filled == shard_tokens:
                    shards.append(current)
                    current, filled = [], 0
            if total == tokens:
                break
        if total == tokens:
            break
    if current:
        shards.append(current)
    if total < tokens:
        raise InputError(f"corpus {corpus.name!r} has {total} tokens in its {split} split, fewer than {tokens}")
    return shards


def plan_hash(shards: list[list[tuple[int, int, int]]]) -> str:
    return hashlib.sha256(json.dumps(shards).encode()).hexdigest()


# ---------------------------------------------------------------- one shard


def _specials(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text ([CLS] and [SEP] for BERT)."""
    plain = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello world")["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    return [], []


def capture_shard(model_name: str, site: str, texts: list[str], pieces: list[tuple[int, int, int]], out: str,
                  index: int, context: int = CONTEXT, batch_tokens: int = BATCH_TOKENS) -> dict:
    """Activations of one shard's pieces, written to OUT/shard-<index>.* atomically; returns {index, rows, d}.

    Plain data in and out, so that it runs as a Ray task. `texts[j]` is the text of piece j's document."""
    with _steady_heap():
        return _capture_shard(model_name, site, texts, pieces, out, index, context, batch_tokens)


@torch.no_grad()
def _capture_shard(model_name: str, site: str, texts: list[str], pieces: list[tuple[int, int, int]], out: str,
                   index: int, context: int, batch_tokens: int) -> dict:
    m = loaded(model_name)
    tok, net = m.tokenizer, m.model
    pre, post = _specials(tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    # windows: (row offset in the shard, doc, window start, the window's token ids, first and last+1 kept offset).
    # A document's windows are fixed (every `context` tokens from its start), so a row's activation does not
    # depend on where the shards or the token budget cut the document: a cut piece still sees its whole window.
    windows, rows = [], 0
    encoded = tok(texts, add_special_tokens=False)["input_ids"]
    for (doc, start, stop), ids in zip(pieces, encoded):
        if stop > len(ids):
            raise InputError(f"document {doc} has {len(ids)} tokens, the plan wants {stop}: the tokenizer changed")
        for ws in range(start - start % context, stop, context):
            lo, hi = max(start, ws) - ws, min(stop, ws + context) - ws
            windows.append((rows, doc, ws, ids[ws:ws + context], lo, hi))
            rows += hi - lo
    doc_of = np.empty(rows, np.int32)
    pos_of = np.empty(rows, np.int32)
    tok_of = np.empty(rows, np.int32)
    X = None  # [rows, d], allocated once d is known
    order = sorted(range(len(windows)), key=lambda w: len(windows[w][3]))  # similar lengths share a batch
    for group in _batches([windows[w] for w in order], batch_tokens, len(pre) + len(post)):
        width = len(group[-1][3]) + len(pre) + len(post)
        input_ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for j, w in enumerate(group):
            seq = pre + w[3] + post
            input_ids[j, :len(seq)] = torch.tensor(seq)
            mask[j, :len(seq)] = 1
        with model_mod.capture(net, site, stop=True) as got:
            net(input_ids=input_ids, attention_mask=mask)
        acts = got["acts"]  # [windows, width, d]
        if X is None:
            X = np.empty((rows, acts.shape[-1]), np.float32)
        for j, (r, doc, ws, ids, lo, hi) in enumerate(group):
            n = hi - lo
            X[r:r + n] = acts[j, len(pre) + lo:len(pre) + hi].float().numpy()
            doc_of[r:r + n] = doc
            pos_of[r:r + n] = np.arange(ws + lo, ws + hi)
            tok_of[r:r + n] = ids[lo:hi]
    if not np.isfinite(X).all():
        raise InputError(f"the model's activations at {site} hold NaN or Inf in shard {index}")
    out = Path(out)
    name = shard_name(index)
    atomic_file(out / f"{name}.npy", lambda p: np.save(p, X))
    from safetensors.numpy import save_file

    atomic_file(out / f"{name}.rows.safetensors",
                lambda p: save_file({"doc": doc_of, "pos": pos_of, "token": tok_of}, str(p)))
    d = int(X.shape[1])
    return {"index": index, "rows": rows, "d": d}


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
CAPTURE_MMAP = 1 << 20  # during a shard: blocks from 1 MB up are mapped and unmapped on their own
AFTER_MMAP = 32 << 20  # after it: glibc's own ceiling, where its moving threshold settles in a long run


@contextmanager
def _steady_heap() -> Iterator[None]:
    """Memory that stays flat from shard to shard. glibc raises its mmap threshold after each large free (up to
    32 MB), after which a shard's batches, of many sizes, come from the heap and fragment it: the peak anonymous
    memory of one process grew shard after shard (518, 553, 594 ... 795 MB over 8 shards of 32k tokens at
    resid.3), though it fell back to 327 MB after each. With the threshold held at 1 MB during a shard, every
    batch tensor is mapped alone and returned when freed: 447-449 MB for every shard, at about 10% of capture
    speed (presumably the page faults of fresh mappings; not profiled). Afterwards the threshold is left at
    glibc's ceiling, where its own adjustment would have settled, so later work in the process (an SAE trained on
    the store) allocates as it would have; the trim returns the shard's freed heap. A no-op off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, CAPTURE_MMAP)
    except (OSError, AttributeError):
        libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, AFTER_MMAP)
            libc.malloc_trim(0)


def _batches(windows: list, batch_tokens: int, extra: int) -> Iterator[list]:
    """Windows sorted by length, cut into groups of at most `batch_tokens` padded tokens (at least one window)."""
    group: list = []
    for w in windows:
        if group and (len(group) + 1) * (len(w[3]) + extra) > batch_tokens:
            yield group
            group = []
        group.append(w)
    if group:
        yield group


# ---------------------------------------------------------------- the whole capture


def local_map(fn: Callable, jobs: Iterable[tuple]) -> Iterator[dict]:
    for job in jobs:
        yield fn(*job)


def _settings(model_name: str, corpus_name: str, site: str, tokens: int, split: str, shard_tokens: int,
              context: int, digest: str) -> dict:
    return {"model": str(model_name), "corpus": str(corpus_name), "site": site, "tokens": tokens, "split": split,
            "shard_tokens": shard_tokens, "context": context, "plan_sha256": digest}


def _start(out: Path, settings: dict, shards: int) -> dict:
    """The manifest to continue from: a fresh one, or the existing one when its settings match."""
    if (out / MANIFEST).is_file():
        manifest = read_json(out / MANIFEST)
        if manifest.get("format") != FORMAT:
            raise InputError(f"{out}/{MANIFEST} is not an activation store's manifest")
        old = {k: manifest.get(k) for k in settings}
        if old != settings:
            diff = ", ".join(f"{k}: {old[k]} (asked {settings[k]})" for k in settings if old[k] != settings[k])
            raise InputError(f"store {out} was captured with other settings ({diff}); choose another store directory")
        # a listed shard whose files were lost or cut is captured again
        manifest["shards"] = {k: v for k, v in manifest["shards"].items() if _intact(out, int(k), v["rows"],
                                                                                   manifest.get("d"))}
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an activation store (no {MANIFEST}); choose another store directory")
    out.mkdir(parents=True, exist_ok=True)
    return {"format": FORMAT, "version": VERSION, **settings, "n_shards": shards, "d": None, "shards": {},
            "complete": False}


def capture(model_name: str | Path, corpus_name: str | Path, site: str, tokens: int, out: str | Path, *,
            split: str = "train", shard_tokens: int = SHARD_TOKENS, context: int = CONTEXT, batch_tokens: int = BATCH_TOKENS,
            mapper: Callable[[Callable, Iterable[tuple]], Iterator[dict]] = local_map,
            on_shard: Callable[[int, int], None] | None = None) -> dict:
    """Capture `tokens` tokens of activations at `site` into the store OUT (resuming it); returns the manifest.

    `mapper(fn, jobs)` runs `fn(*job)` for every job and yields the results as they finish (in any order):
    `local_map` here, a Ray mapper in experiments. `on_shard(done, total)` reports progress."""
    if context < 1 or batch_tokens < 1:
        raise InputError(f"context and batch tokens must be positive, got {context} and {batch_tokens}")
    out = Path(out)
    m = loaded(str(model_name))
    model_mod.site(m.model, site)  # an unknown site fails here, before anything is written
    corpus = corpus_mod.load(corpus_name)
    shards = plan(corpus, m.tokenizer, tokens, split, shard_tokens)
    settings = _settings(model_name, corpus_name, site, tokens, split, shard_tokens, context, plan_hash(shards))
    manifest = _start(out, settings, len(shards))
    if not (out / VOCAB).is_file():
        vocab = m.tokenizer.convert_ids_to_tokens(list(range(len(m.tokenizer))))
        write_json(out / VOCAB, vocab)
    manifest["corpus_documents"] = len(corpus)
    import transformers

    # the docstrings corpus depends on the Python that runs, the tokens on the tokenizer: both recorded
    manifest["environment"] = {**environment(), "transformers": transformers.__version__}
    write_json(out / MANIFEST, manifest)
    todo = [i for i in range(len(shards)) if str(i) not in manifest["shards"]]
    jobs = ((str(model_name), site, [corpus.docs[d] for d, _, _ in shards[i]], shards[i], str(out), i, context,
             batch_tokens) for i in todo)
    if on_shard:
        on_shard(len(manifest["shards"]), len(shards))
    rows_now = 0
    for res in mapper(capture_shard, jobs):
        rows_now += res["rows"]
        manifest["d"] = res["d"]
        manifest["shards"][str(res["index"])] = {"rows": res["rows"]}
        manifest["complete"] = len(manifest["shards"]) == len(shards)
        write_json(out / MANIFEST, manifest)
        if on_shard:
            on_shard(len(manifest["shards"]), len(shards))
    return {**manifest, "captured_now": len(todo), "rows_now": rows_now}


# ---------------------------------------------------------------- reading


def _npy_shape(path: Path) -> tuple[tuple[int, ...], int] | None:
    """(shape, size the file must have) from a .npy header, or None when the header is unreadable."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            return shape, f.tell() + int(np.prod(shape)) * dtype.itemsize
    except (OSError, ValueError, EOFError):
        return None


def _intact(out: Path, i: int, rows: int, d: int | None) -> bool:
    p = out / f"{shard_name(i)}.npy"
    got = _npy_shape(p) if p.is_file() else None
    return (got is not None and got[0][0] == rows and (d is None or got[0][1:] == (d,))
            and p.stat().st_size == got[1] and (out / f"{shard_name(i)}.rows.safetensors").is_file())


class ShardedRows:
    """The store's `X: [rows, d]` as one read-only array over the memory-mapped shards (no copy).

    Indexing with a slice or an integer array reads only the rows asked for. `on_disk` tells the dictionary's
    batch reader to read it like a memory-mapped array: contiguous blocks in random order."""

    on_disk = True
    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])])  # [shards + 1]
        self.shape = (int(self.starts[-1]), parts[0].shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[:], dtype=dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            rows, cols = key[0], key[1:]
            return self[rows][(slice(None), *cols)]
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= k < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            s = int(np.searchsorted(self.starts, k, side="right")) - 1
            return np.asarray(self.parts[s][k - self.starts[s]])
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(lo, hi, step)]
            out = []
            for s, part in enumerate(self.parts):
                a, b = max(lo, self.starts[s]), min(hi, self.starts[s + 1])
                if a < b:
                    out.append(part[a - self.starts[s]:b - self.starts[s]])
            return np.concatenate(out) if out else np.empty((0, self.shape[1]), np.float32)
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = idx.nonzero()[0]
        idx = np.where(idx < 0, idx + len(self), idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        shard = np.searchsorted(self.starts, idx, side="right") - 1
        out = np.empty((len(idx), self.shape[1]), np.float32)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.parts[s][idx[sel] - self.starts[s]]
        return out


class Store:
    """A finished store, opened for reading: `X` (ShardedRows) and per row `doc`, `pos`, `token` ([rows] int32)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise InputError(f"{path} is not an activation store (no {MANIFEST})")
        manifest = read_json(path / MANIFEST)
        if manifest.get("format") != FORMAT:
            raise InputError(f"{path}/{MANIFEST} is not an activation store's manifest")
        if not manifest.get("complete"):
            raise InputError(f"store {path} is incomplete ({len(manifest.get('shards', {}))} of "
                             f"{manifest.get('n_shards')} shards): run the same capture again to finish it")
        self.path, self.manifest = path, manifest
        parts, rows = [], {"doc": [], "pos": [], "token": []}
        for i in range(manifest["n_shards"]):
            want = manifest["shards"].get(str(i), {}).get("rows")
            p = path / f"{shard_name(i)}.npy"
            if want is None or not p.is_file():
                raise InputError(f"store {path}: shard {i} is missing ({p.name}); capture again to restore it")
            if not _intact(path, i, want, manifest["d"]):
                raise InputError(f"store {path}: shard {i} ({p.name}) is truncated or damaged (want {want} rows "
                                 f"of d={manifest['d']})")
            parts.append(np.load(p, mmap_mode="r", allow_pickle=False))
            for k, v in _read_rows(path / f"{shard_name(i)}.rows.safetensors", want).items():
                rows[k].append(v)
        self.X = ShardedRows(parts)
        self.doc, self.pos, self.token = (np.concatenate(rows[k]) for k in ("doc", "pos", "token"))
        self._vocab = None

    def __len__(self) -> int:
        return len(self.X)

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            self._vocab = read_json(self.path / VOCAB)
        return self._vocab

    def mean(self, chunk: int = 1 << 16) -> np.ndarray:
        """The mean row ([d] float32), read a chunk at a time (accumulated in float64)."""
        total = np.zeros(self.X.shape[1])
        for s in range(0, len(self), chunk):
            total += self.X[s:s + chunk].sum(0, dtype=np.float64)
        return (total / len(self)).astype(np.float32)

    def token_text(self, rows) -> list[str]:
        """The token text of the given rows."""
        return [self.vocab[t] for t in self.token[rows]]


def _read_rows(p: Path, want: int) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="np") as f:
            got = {k: f.get_tensor(k) for k in ("doc", "pos", "token")}
    except Exception as e:  # a missing key, a cut file, or safetensors' own error type
        raise InputError(f"store {p.parent}: {p.name} is unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                         ) from None
    if any(v.shape != (want,) for v in got.values()):
        raise InputError(f"store {p.parent}: {p.name} does not hold {want} rows")
    return got


def is_store(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()
