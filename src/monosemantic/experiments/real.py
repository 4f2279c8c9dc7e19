"""A real transformer's activations: capture a store (locally or one Ray task per shard).

`capture_run` validates a `CaptureConfig`, plans the shards, captures those the store does not hold yet and
returns the figures (rows, shards, `wall_s` of the shards captured now, `tokens_per_s`). The store directory
is the run's artifact: its manifest records every setting and the package versions.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import PositiveInt

from monosemantic.config import Seed, Strict
from monosemantic.errors import InputError
from monosemantic.experiments.sweeps import map_calls
from monosemantic.progress import Bar
from monosemantic.real import store as S
from monosemantic.real.model import MINILM


class CaptureConfig(Strict):
    """`real capture`: activations of a model at one site over a corpus, into a sharded store."""

    model: str = MINILM
    corpus: str = "all"
    site: str = "resid.3"
    tokens: PositiveInt = 65_536
    split: Literal["train", "test", "all"] = "train"
    shard_tokens: PositiveInt = S.SHARD_TOKENS
    context: PositiveInt = S.CONTEXT
    batch_tokens: PositiveInt = S.BATCH_TOKENS
    backend: Literal["local", "ray"] = "local"
    workers: PositiveInt | None = None  # ray: CPUs of a new local Ray (default: all)
    ray_address: str | None = None


def ray_map(workers: int | None, address: str | None) -> Callable[[Callable, Iterable[tuple]], Iterator[dict]]:
    """A mapper for `store.capture`: one Ray task per job, results as they finish."""
    def mapper(fn: Callable, jobs: Iterable[tuple]) -> Iterator[dict]:
        for _, result in map_calls(fn, list(enumerate(jobs)), "ray", workers, address):
            yield result
    return mapper


def capture_run(cfg: CaptureConfig, out: str | Path, progress: bool = False) -> dict:
    """Capture (or finish) the store OUT; return its figures."""
    if cfg.ray_address and cfg.backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if cfg.ray_address:  # fail fast, before the model loads
        from monosemantic.experiments.sweeps import check_ray_address

        check_ray_address(cfg.ray_address)
    mapper = ray_map(cfg.workers, cfg.ray_address) if cfg.backend == "ray" else S.local_map
    bar = None

    def on_shard(done: int, total: int) -> None:
        nonlocal bar
        if progress and bar is None:
            bar = Bar(total, f"capture {cfg.site}", done)
        if bar:
            bar.update(done)

    t = [0.0]

    def timed(fn: Callable, jobs: Iterable[tuple]) -> Iterator[dict]:
        # compute only: the clock starts once the model is loaded and the shards are planned
        t[0] = time.perf_counter()
        yield from mapper(fn, jobs)

    try:
        manifest = S.capture(cfg.model, cfg.corpus, cfg.site, cfg.tokens, out, split=cfg.split,
                             shard_tokens=cfg.shard_tokens, context=cfg.context, batch_tokens=cfg.batch_tokens,
                             mapper=timed, on_shard=on_shard)
    finally:
        if bar:
            bar.close()
    wall = time.perf_counter() - t[0] if t[0] else 0.0
    now = manifest["rows_now"]
    return {"store": str(out), "model": cfg.model, "site": cfg.site, "corpus": cfg.corpus, "split": cfg.split,
            "rows": sum(v["rows"] for v in manifest["shards"].values()), "d": manifest["d"],
            "shards": manifest["n_shards"], "captured_now": manifest["captured_now"], "backend": cfg.backend,
            "wall_s": wall, "tokens_per_s": now / wall if wall > 0 and now else None}


# ---------------------------------------------------------------- a dictionary on the real model's activations


class RealSaeConfig(Strict):
    """The demo's dictionary on a middle layer's residual stream: train and test stores, a TopK SAE, the splice."""

    site: str = "resid.3"
    corpus: str = "all"
    train_tokens: PositiveInt = 32_768
    test_tokens: PositiveInt = 4_096
    expansion: PositiveInt = 8  # latents = expansion * d
    k: PositiveInt = 32
    epochs: PositiveInt = 4  # SAE training samples = epochs * train_tokens
    splice_texts: PositiveInt = 128  # test-split documents whose embeddings are compared
    seed: Seed = 0
    neuron_site: str = "mlp.3"  # the model's MLP neurons, scored on the same test rows as the latents
    # SAELens's TopK SAE on the same store at the same latents, k and samples (peers' settings), scored alike:
    # auto trains it when SAELens is installed (the `bench` extra) and says how to install it otherwise
    saelens: Literal["auto", "on", "off"] = "auto"


def density_histogram(fired: "np.ndarray", rows: int, bins: int = 30) -> dict:
    """Latents by log10 firing rate on `rows` rows (dead latents counted apart): a JSON-ready histogram."""
    import numpy as np

    live = fired[fired > 0] / rows
    edges = np.linspace(np.log10(1 / rows), 0, bins + 1)
    counts, _ = np.histogram(np.log10(live), bins=edges)
    return {"log10_density_edges": edges.tolist(), "counts": counts.tolist(), "dead": int((fired == 0).sum())}


def score_on_model(est, Xt: "np.ndarray", site: str, texts: list[str], mean: "np.ndarray") -> dict:
    """A dictionary on the test rows `Xt: [rows, d]`: FVU, L0, dead latents, the density histogram, and how much
    of MiniLM's sentence embedding survives its reconstruction spliced in at `site` (against zero- and
    mean-ablation with the train mean `mean: [d]`). `codes` (scipy sparse) comes back too."""
    import numpy as np
    import torch

    from monosemantic.real.splice import embedding_recovered

    codes = est.transform(Xt)
    fired = np.asarray((codes != 0).sum(0)).ravel()  # [latents]
    fvu = float(((Xt - est.inverse_transform(codes)) ** 2).sum() / ((Xt - Xt.mean(0)) ** 2).sum())

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(est.inverse_transform(est.transform(x.numpy())), dtype=np.float32))

    t = time.perf_counter()
    splice = embedding_recovered(S.loaded(MINILM), site, texts, reconstruct, torch.from_numpy(mean))
    return {"fvu": fvu, "l0": float(codes.nnz / len(Xt)), "dead": int((fired == 0).sum()),
            "dead_fraction": float((fired == 0).mean()), "density": density_histogram(fired, len(Xt)), **splice,
            "splice_s": time.perf_counter() - t, "codes": codes}


def saelens_peer(cfg: RealSaeConfig, train: S.Store, work: Path, Xt, texts: list[str], mean, samples: int,
                 progress: bool = False) -> dict:
    """SAELens's TopK SAE trained on the same store at the same latents, k and samples, scored as ours is
    (`score_on_model`); {"skipped": why} when it is off or not installed (auto)."""
    from monosemantic.dictionary import load
    from monosemantic.dictionary import saelens

    if cfg.saelens == "off":
        return {"skipped": "off (--saelens off)"}
    if not saelens.installed():
        return {"skipped": f"SAELens is not installed: {saelens.INSTALL}"}
    d = train.X.shape[1]
    got = saelens.train_topk(train.X, cfg.expansion * d, cfg.k, samples, work / "saelens", seed=cfg.seed,
                             progress=progress)
    scores = score_on_model(load(work / "saelens"), Xt, cfg.site, texts, mean)
    scores.pop("codes")
    return {**got, "samples_per_s": got["samples"] / got["train_s"], **scores}


def sae_run(cfg: RealSaeConfig, work: str | Path, progress: bool = False, out: str | Path | None = None,
            overwrite: bool = False, pages: dict[str, Callable[[dict], str]] | None = None) -> dict:
    """Capture train and test stores under WORK (resumable), fit a TopK SAE on the train store (streamed), and
    score it on the test split: FVU, L0, dead latents, the density histogram, and embedding recovered
    (`score_on_model`); SAELens's TopK SAE beside it (`saelens_peer`, under "saelens"); then read its features on
    the test rows (`features_of`). With OUT, write the run directory (`write_real_run`)."""
    import numpy as np

    from monosemantic.dictionary import SparseAutoencoder, saelens
    from monosemantic.real import corpus as C
    from monosemantic.runs import check_new_dir, check_output_path

    if out is not None:
        check_new_dir(out, overwrite)  # before minutes of work
    work = check_output_path(work)  # '' would put the stores in the working directory
    if cfg.saelens == "on" and not saelens.installed():
        raise InputError(f"--saelens on needs SAELens: {saelens.INSTALL}")
    batch = SparseAutoencoder().batch
    if cfg.train_tokens < batch:  # the SAE would refuse them, after the capture
        raise InputError(f"--train-tokens {cfg.train_tokens} is fewer than one SAE batch of {batch}")
    stores = {}
    for split, tokens in (("train", cfg.train_tokens), ("test", cfg.test_tokens)):
        cap = CaptureConfig(corpus=cfg.corpus, site=cfg.site, tokens=tokens, split=split)
        stores[split] = capture_run(cap, work / f"store-{split}", progress)
    train, test = S.Store(work / "store-train"), S.Store(work / "store-test")
    d = train.X.shape[1]
    sae = SparseAutoencoder("topk", cfg.expansion * d, k=cfg.k, samples=cfg.epochs * len(train), seed=cfg.seed,
                            progress=progress)
    sae.fit(train.X)  # streamed from the shards
    Xt = np.asarray(test.X[:])
    corpus = C.load(cfg.corpus)
    texts = [corpus.docs[i] for i in corpus.ids("test")[:cfg.splice_texts]]
    mean = train.mean()  # [d]
    ours = score_on_model(sae, Xt, cfg.site, texts, mean)
    codes = ours.pop("codes")
    peer = saelens_peer(cfg, train, work, Xt, texts, mean, sae.step_ * sae.batch, progress)
    neurons = capture_run(CaptureConfig(corpus=cfg.corpus, site=cfg.neuron_site, tokens=cfg.test_tokens, split="test"),
                          work / f"store-test-{cfg.neuron_site}", progress)
    stores[cfg.neuron_site] = neurons
    read = features_of(test, S.Store(work / f"store-test-{cfg.neuron_site}"), codes, mean,
                       np.random.default_rng(cfg.seed))
    result = {"site": cfg.site, "corpus": cfg.corpus, "d": d, "tokens": len(train), "test_tokens": len(test),
              "latents": sae.n_latents, "k": cfg.k, "samples": sae.step_ * sae.batch, "train_s": sae.train_seconds_,
              "samples_per_s": sae.step_ * sae.batch / sae.train_seconds_, **ours,
              "capture": {k: {"tokens_per_s": v["tokens_per_s"], "wall_s": v["wall_s"]} for k, v in stores.items()},
              "neuron_site": cfg.neuron_site, "saelens": peer, **read}
    if out is not None:
        write_real_run(out, cfg, result, work, overwrite, pages)
    return result


# ---------------------------------------------------------------- reading the dictionary's features
# Every latent is enumerated on the test rows: how often it fires, the histogram of its activations, and its
# top-activating rows. Contexts are read from the test store's own rows (doc, pos, token): a store holds its
# split's documents whole and in order (only the last one may be cut by the token budget), so the tokens around a
# row are its neighbours in the store; nothing is re-tokenized. The same rows are captured at the model's MLP
# (`neuron_site`), so neurons and latents are scored by one measure (`real.features`) on the same tokens.

HIST_BINS = 20  # bins of each latent's activation histogram, over (0, its largest activation]
PAIR_ROWS = 1500  # test rows whose every pair is scored for the cosine pitfall (~1.1M pairs)
PAIR_PLOTTED = 3000  # random pairs kept for the scatter
BIG = ("tensors", "row_text")  # result keys that go to the run directory's files, not to result.json


def _dense(A, chunk: int = 2048) -> Iterator["np.ndarray"]:
    """Row chunks of a scipy sparse matrix or a store's rows, as dense arrays."""
    import numpy as np

    for s in range(0, A.shape[0], chunk):
        part = A[s:s + chunk]
        yield part.toarray() if hasattr(part, "toarray") else np.asarray(part)


def enumerate_features(codes, token: "np.ndarray", bins: int = HIST_BINS) -> dict[str, "np.ndarray"]:
    """Every latent of `codes: [rows, latents]` (scipy sparse, non-negative) on rows whose token ids are
    `token: [rows]`: `fired` (rows where it is non-zero) and `density` ([latents]), its largest activation `max`,
    `hist: [latents, bins]` (its non-zero activations in equal bins over (0, max]), its top rows
    `top_rows`/`top_values: [latents, TOP_K]` (a latent that fired on fewer rows has zeros at the end) and
    `monosemanticity` (NaN where it fired on fewer than two rows)."""
    import numpy as np

    from monosemantic.real.features import top_rows, unit_monosemanticity

    C = codes.tocsc()
    C.eliminate_zeros()
    n_rows, latents = C.shape
    fired = np.diff(C.indptr)  # [latents]
    vmax = np.zeros(latents, np.float32)
    has = fired > 0
    if has.any():  # the max over each non-empty column's stored values (empty columns hold none in between)
        vmax[has] = np.maximum.reduceat(C.data, C.indptr[:-1][has])
    col = np.repeat(np.arange(latents), fired)  # [nnz] latent of each stored value
    b = np.minimum((C.data / np.maximum(vmax[col], 1e-30) * bins).astype(np.int64), bins - 1)
    hist = np.bincount(col * bins + np.maximum(b, 0), minlength=latents * bins).reshape(latents, bins)
    values, rows = top_rows(_dense(codes))
    return {"fired": fired.astype(np.int64), "density": (fired / n_rows).astype(np.float32), "max": vmax,
            "hist": hist.astype(np.int32), "top_rows": rows.numpy(), "top_values": values.numpy(),
            "monosemanticity": unit_monosemanticity(_dense(codes), token)}


def cosine_pitfall(X: "np.ndarray", codes, mean: "np.ndarray", rng, n: int = PAIR_ROWS) -> tuple[dict, dict]:
    """The cosine of activation rows against the Jaccard overlap of their SAE supports, over every pair of `n`
    random rows of `X: [rows, d]`: Pearson r (raw cosine, and cosine after subtracting the train mean `mean: [d]`),
    the pairs with high cosine but disjoint supports and the reverse, and the most striking pair of each kind
    (test-row indices). Returns (figures, arrays of PAIR_PLOTTED random pairs for the scatter)."""
    import numpy as np

    import monosemantic.pairs as P

    pick = np.sort(rng.choice(len(X), min(n, len(X)), replace=False))
    a, b = P.all_pairs(len(pick))
    H = np.asarray(X[pick], np.float64)
    cos, cos_c = P.cosines(H, a, b), P.cosines(H - mean, a, b)
    inter, jac = P.overlaps(codes[pick] != 0, a, b)  # supports: the SAE's codes
    pit = P.pitfall(cos, inter, jac)
    examples = [{"kind": kind, "cosine": float(cos[i]), "jaccard": float(jac[i]), "shared": int(inter[i]),
                 "row_a": int(pick[a[i]]), "row_b": int(pick[b[i]])} for kind, i in pit.pop("worst").items()
                if i is not None]
    shown = np.sort(rng.choice(len(cos), min(PAIR_PLOTTED, len(cos)), replace=False))
    figures = {"rows": int(len(pick)), "pairs": int(len(cos)), "correlation": float(np.corrcoef(cos, jac)[0, 1]),
               "correlation_centred": float(np.corrcoef(cos_c, jac)[0, 1]), "median_cosine": float(np.median(cos)),
               **pit, "examples": examples}
    return figures, {"cos": cos[shown].astype(np.float32), "jaccard": jac[shown].astype(np.float32)}


def _median(v: "np.ndarray") -> float | None:
    import numpy as np

    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else None


def features_of(test: S.Store, neurons: S.Store, codes, mean: "np.ndarray", rng) -> dict:
    """Enumeration, monosemanticity of latents and neurons, and the cosine pitfall on the test rows: the small
    figures, and under BIG the per-latent arrays and the rows' text (for the run directory and the browser)."""
    import numpy as np

    from monosemantic.real.features import TOP_K, document_runs, unit_monosemanticity

    if not (np.array_equal(test.doc, neurons.doc) and np.array_equal(test.pos, neurons.pos)):
        raise InputError(f"stores {test.path} and {neurons.path} do not hold the same rows")
    t = time.perf_counter()
    feats = enumerate_features(codes, test.token)
    neuron_mono = unit_monosemanticity(_dense(neurons.X), test.token)
    neuron_fired = sum((A > 0).sum(0) for A in _dense(neurons.X))  # [neurons] tokens where each is positive
    pit, pairs = cosine_pitfall(test.X, codes, mean, rng)
    live = feats["fired"] > 0
    fm, nm = feats["monosemanticity"], neuron_mono
    start, stop = document_runs(test.doc, test.pos)

    def scores(name: str, v: "np.ndarray", fired: "np.ndarray") -> dict:
        ok = v[np.isfinite(v)]
        # the control at equal counts: units positive on at least TOP_K tokens, all normalised by log(TOP_K)
        return {f"{name}_scored": len(ok), f"{name}_quartiles": np.percentile(ok, [25, 50, 75]).tolist() if len(ok)
                else None, f"{name}_full": int((fired >= TOP_K).sum()), f"{name}_median_full": _median(v[fired >= TOP_K])}

    above = (fm[np.isfinite(fm)] > _median(nm)).mean() if np.isfinite(fm).any() and _median(nm) is not None else None
    return {"neurons": int(neurons.X.shape[1]),
            "neuron_monosemanticity": _median(nm), "feature_monosemanticity": _median(fm),
            "monosemanticity": {"top_k": TOP_K, **scores("neuron", nm, neuron_fired),
                                **scores("feature", fm, feats["fired"]), "features_above_neuron_median": above},
            "enumeration": {"live": int(live.sum()), "median_density": _median(feats["density"][live]),
                            "median_fired": _median(feats["fired"][live].astype(float)), "hist_bins": HIST_BINS,
                            "top_k": TOP_K, "contexts": "neighbouring rows of the test store (same document)"},
            "pitfall": pit, "read_s": time.perf_counter() - t,
            "tensors": {"features": feats, "neurons": {"monosemanticity": nm}, "pairs": pairs,
                        "rows": {"doc": test.doc, "pos": test.pos, "token": test.token, "start": start, "stop": stop}},
            "row_text": test.token_text(slice(None))}


def sae_lines(res: dict) -> list[str]:
    """What `real sae` prints: ours, and SAELens's at equal L0 beside it (or why it was skipped)."""
    def num(v) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def row(name: str, r: dict) -> str:
        return (f"{name:<16} FVU {r['fvu']:.3f}  L0 {r['l0']:5.1f}  dead {r['dead']:>5}  embedding recovered "
                f"{r['embedding_recovered']:.3f} (mean ablation {r['embedding_recovered_mean']:.3f})  "
                f"train {r['train_s']:.0f} s")

    out = [f"{res['latents']} latents at {res['site']}, k {res['k']}, {res['samples']} samples:", row("ours", res)]
    peer = res.get("saelens") or {}
    out.append(row(f"SAELens {peer['version']}", peer) if "fvu" in peer else f"SAELens: skipped ({peer.get('skipped')})")
    out.append(f"monosemanticity median: neurons {num(res['neuron_monosemanticity'])}, "
               f"latents {num(res['feature_monosemanticity'])}")
    return out


def small(result: dict) -> dict:
    """The result without its per-latent arrays (what result.json and the CLI show)."""
    return {k: v for k, v in result.items() if k not in BIG}


def write_real_run(out: str | Path, cfg: RealSaeConfig, result: dict, stores: str | Path, overwrite: bool = False,
                   pages: dict[str, Callable[[dict], str]] | None = None) -> Path:
    """The run directory: config.json, result.json (the figures), the per-latent arrays in `<stem>.safetensors`
    (features: fired, density, max, hist, top_rows, top_values, monosemanticity; neurons: monosemanticity;
    pairs: cos, jaccard; rows: doc, pos, token, start, stop of the test rows), `row_text.json` (the test rows'
    token text) and `pages` (file name -> function of the result writing that file's text, e.g. the browser)."""
    import numpy as np
    import torch

    from monosemantic.runs import write_run

    tensors = {stem: {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in part.items()}
               for stem, part in result["tensors"].items()}
    files = {name: (lambda p, f=f: p.write_text(f(result), encoding="utf-8")) for name, f in (pages or {}).items()}
    return write_run(out, {**cfg.model_dump(), "stores": str(stores)}, small(result), tensors, overwrite,
                     extra_json={"row_text.json": result["row_text"]}, extra_files=files)


def read_real_run(run: str | Path) -> dict:
    """A run directory written by `write_real_run`, read back into the result (arrays as numpy)."""
    from monosemantic.runs import load_tensors, read_json

    run = Path(run)
    if not run.is_dir():
        raise InputError(f"{run} is not a directory")
    if not (run / "result.json").is_file() or not (run / "features.safetensors").is_file():
        raise InputError(f"{run} is not a real-model SAE run directory (no result.json and features.safetensors; "
                         f"write one with `monosemantic real sae`)")
    result = read_json(run / "result.json")
    if not isinstance(result, dict) or "enumeration" not in result:
        raise InputError(f"{run}/result.json is not a real-model SAE run's result")
    result["tensors"] = {stem: {k: v.numpy() for k, v in load_tensors(run / f"{stem}.safetensors").items()}
                         for stem in ("features", "neurons", "pairs", "rows")}
    result["row_text"] = read_json(run / "row_text.json")
    rows = len(result["tensors"]["rows"]["token"])
    if not isinstance(result["row_text"], list) or len(result["row_text"]) != rows:
        raise InputError(f"{run}/row_text.json does not hold the text of its {rows} rows")
    return result


def demo(quick: bool, progress: bool) -> dict:
    """The report's section: a small slice (quick: a tiny one), captured into a temporary directory."""
    import tempfile

    cfg = (RealSaeConfig(corpus="fortunes", train_tokens=2048, test_tokens=512, epochs=2, splice_texts=8) if quick
           else RealSaeConfig())
    with tempfile.TemporaryDirectory(prefix="monosemantic-real-") as work:
        return sae_run(cfg, work, progress)
