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

from pydantic import NonNegativeInt, PositiveInt

from monosemantic.config import Strict
from monosemantic.errors import InputError
from monosemantic.experiments.sweeps import ray_session
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


def _ray_task(fn: Callable, threads: int = 1):
    """fn in a Ray worker with `threads` torch threads (each task gets one CPU)."""
    def run(*args):
        import torch

        torch.set_num_threads(threads)
        return fn(*args)
    return run


def ray_map(workers: int | None, address: str | None) -> Callable[[Callable, Iterable[tuple]], Iterator[dict]]:
    """A mapper for `store.capture`: one Ray task per job, results as they finish."""
    def mapper(fn: Callable, jobs: Iterable[tuple]) -> Iterator[dict]:
        with ray_session(workers, address) as ray:
            task = ray.remote(num_cpus=1)(_ray_task(fn))
            pending = [task.remote(*job) for job in jobs]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    yield ray.get(done[0])
                except ray.exceptions.RayTaskError as e:  # a worker's InputError comes back wrapped
                    cause = e.as_instanceof_cause()
                    if isinstance(cause, InputError):
                        raise InputError(str(cause).splitlines()[-1]) from None
                    raise
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
    seed: NonNegativeInt = 0


def density_histogram(fired: "np.ndarray", rows: int, bins: int = 30) -> dict:
    """Latents by log10 firing rate on `rows` rows (dead latents counted apart): a JSON-ready histogram."""
    import numpy as np

    live = fired[fired > 0] / rows
    edges = np.linspace(np.log10(1 / rows), 0, bins + 1)
    counts, _ = np.histogram(np.log10(live), bins=edges)
    return {"log10_density_edges": edges.tolist(), "counts": counts.tolist(), "dead": int((fired == 0).sum())}


def sae_run(cfg: RealSaeConfig, work: str | Path, progress: bool = False) -> dict:
    """Capture train and test stores under WORK (resumable), fit a TopK SAE on the train store (streamed), and
    score it on the test split: FVU, L0, dead latents, the density histogram, and embedding recovered."""
    import numpy as np
    import torch

    from monosemantic.dictionary import SparseAutoencoder
    from monosemantic.real import corpus as C
    from monosemantic.real.splice import embedding_recovered

    work = Path(work)
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
    codes = sae.transform(Xt)
    fired = np.asarray((codes != 0).sum(0)).ravel()  # [latents]
    fvu = float(((Xt - sae.inverse_transform(codes)) ** 2).sum() / ((Xt - Xt.mean(0)) ** 2).sum())

    def reconstruct(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(sae.inverse_transform(sae.transform(x.numpy())), dtype=np.float32))

    corpus = C.load(cfg.corpus)
    texts = [corpus.docs[i] for i in corpus.ids("test")[:cfg.splice_texts]]
    t = time.perf_counter()
    splice = embedding_recovered(S.loaded(MINILM), cfg.site, texts, reconstruct, torch.from_numpy(train.mean()))
    return {"site": cfg.site, "corpus": cfg.corpus, "d": d, "tokens": len(train), "test_tokens": len(test),
            "latents": sae.n_latents, "k": cfg.k, "samples": sae.step_ * sae.batch, "train_s": sae.train_seconds_,
            "samples_per_s": sae.step_ * sae.batch / sae.train_seconds_, "fvu": fvu,
            "l0": float(codes.nnz / len(Xt)), "dead": int((fired == 0).sum()), "dead_fraction": float((fired == 0).mean()),
            "density": density_histogram(fired, len(Xt)), **splice, "splice_s": time.perf_counter() - t,
            "capture": {k: {"tokens_per_s": v["tokens_per_s"], "wall_s": v["wall_s"]} for k, v in stores.items()}}


def demo(quick: bool, progress: bool) -> dict:
    """The report's section: a small slice (quick: a tiny one), captured into a temporary directory."""
    import tempfile

    cfg = (RealSaeConfig(corpus="fortunes", train_tokens=2048, test_tokens=512, epochs=2, splice_texts=8) if quick
           else RealSaeConfig())
    with tempfile.TemporaryDirectory(prefix="monosemantic-real-") as work:
        return sae_run(cfg, work, progress)
