"""Activation capture from the real model (all-MiniLM-L6-v2), SAE training on the store, and SAELens on the same store.

1. Capture at a middle layer's residual stream (resid.3) of the `all` corpus at 64k, 128k and 256k tokens
   (and 1M with --million), each in a fresh process: tokens/s and CPU seconds of the capture compute and the
   process's peak RSS. Time should grow linearly with tokens and memory stay flat (one shard in memory at a
   time). Baseline, in the same process just before: a bare forward pass of the whole model over the same
   kind of windows (no hooks, nothing stored), so the ratio says what capture costs beyond the model under the
   same load (capture stops at the site, 4 of 6 blocks, so it can beat 1).
2. SAE training (TopK, 8x overcomplete, k 32) streamed from each store, one pass over its rows, each in a fresh
   process: samples/s and peak RSS (time should grow linearly, samples/s and memory stay flat); then, on the
   largest store, --sae-samples samples from the store against the same rows as one in-memory array.
3. Ours against SAELens's TopK SAE at equal L0 (the same latents, k and samples), both trained on the same store
   (the smallest size) and scored on a store of test-split tokens: FVU, L0, dead latents, embedding recovered
   (the reconstruction spliced into MiniLM, against zero- and mean-ablation) and training time. SAELens runs
   with the peers' settings (lr 1e-3 constant, batch 1024, its defaults otherwise) through the library's
   `dictionary.saelens.train_topk`, in a Python that has it (the `bench` extra, --peers-venv DIR, $PEERS_DIR/venv
   or .peers/venv, which `make peers` builds with this package in it); its directory is read back by
   `monosemantic.dictionary.load` and both are scored by `experiments.real.score_on_model`, as `real sae` does.
   Without SAELens the section says how to install it and is skipped.

usage: python benchmarks/real_model.py [--sizes 65536 131072 262144] [--million] [--sae-samples 65536]
                                       [--peer-samples 131072] [--test-tokens 8192] [--splice-texts 128]
                                       [--peers-venv DIR] [--skip-peer] [--threads N] [--keep DIR] [--json FILE]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
SITE = "resid.3"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakAnon:
    """The peak of this process's anonymous memory (RssAnon in /proc/self/status: heap and tensors, not the
    memory-mapped store pages that the peak RSS also counts, which the kernel can drop), sampled every 20 ms."""

    def __init__(self):
        import threading

        self.peak = 0.0
        threading.Thread(target=self._run, daemon=True).start()

    def now(self) -> float:
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) / 1024
        except (OSError, StopIteration):
            return float("nan")

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def mb(self) -> float:
        return max(self.peak, self.now())


ANON = None  # a PeakAnon in a child process


def child_capture(tokens: int, out: str, split: str = "train") -> dict:
    """Capture in this process, after a bare forward pass measured the machine's speed just before (so that the
    ratio stands on a loaded machine), with its wall and CPU seconds (the model and corpus loaded beforehand)."""
    from monosemantic.experiments.real import CaptureConfig, capture_run
    from monosemantic.real import corpus as C

    C.load("all")
    base = child_forward(4096) if split == "train" else {"tokens_per_s": None}
    cpu = time.process_time()
    res = capture_run(CaptureConfig(corpus="all", site=SITE, tokens=tokens, split=split), out)
    return {**res, "cpu_s": time.process_time() - cpu, "forward_tokens_per_s": base["tokens_per_s"],
            "peak_rss_mb": _rss_mb(), "peak_anon_mb": ANON.mb()}


def child_forward(tokens: int) -> dict:
    """The baseline: the whole model over windows of the same corpus, batched the way capture batches them."""
    import torch

    from monosemantic.real import corpus as C
    from monosemantic.real import store as S

    m = S.loaded("minilm")
    c = C.load("fortunes")  # the windows' lengths matter, not their source: fortunes load fast
    shards = S.plan(c, m.tokenizer, tokens, shard_tokens=tokens)
    texts = [c.docs[d] for d, _, _ in shards[0]]
    ids = [t[s:e][:S.CONTEXT] for t, (_, s, e) in zip(m.tokenizer(texts, add_special_tokens=False)["input_ids"],
                                                      shards[0])]
    cls, sep = m.tokenizer.cls_token_id, m.tokenizer.sep_token_id
    windows = sorted(([None, None, None, [cls] + i + [sep]] for i in ids), key=lambda w: len(w[3]))
    t = time.perf_counter()
    n = 0
    with torch.no_grad():
        for group in S._batches(windows, S.BATCH_TOKENS, 0):
            width = len(group[-1][3])
            x = torch.zeros((len(group), width), dtype=torch.long)
            mask = torch.zeros_like(x)
            for j, w in enumerate(group):
                x[j, :len(w[3])] = torch.tensor(w[3])
                mask[j, :len(w[3])] = 1
                n += len(w[3]) - 2
            m.model(input_ids=x, attention_mask=mask)
    wall = time.perf_counter() - t
    return {"tokens": n, "wall_s": wall, "tokens_per_s": n / wall}


def child_sae(store: str, samples: int, in_memory: bool) -> dict:
    import numpy as np

    from monosemantic.data import load_data
    from monosemantic.dictionary import SparseAutoencoder

    X = load_data(store).X
    if in_memory:
        X = np.ascontiguousarray(X[:])  # the baseline: every row in one array
    sae = SparseAutoencoder("topk", 8 * X.shape[1], k=32, samples=samples, batch=1024).fit(X)
    return {"samples": sae.step_ * 1024, "wall_s": sae.train_seconds_,
            "samples_per_s": sae.step_ * 1024 / sae.train_seconds_, "peak_rss_mb": _rss_mb(), "peak_anon_mb": ANON.mb(),
            "fvu_first_10k": 1 - sae.score(X[:10_000])}


def child_compare(train: str, test: str, samples: int, k: int, texts: int, work: str) -> dict:
    """Ours and SAELens's TopK SAE on the train store, scored on the test store and spliced into MiniLM, with the
    library's own pieces (`saelens.train_topk`, `score_on_model`), in a Python that has SAELens."""
    import numpy as np

    from monosemantic.dictionary import SparseAutoencoder, load, saelens
    from monosemantic.experiments.real import score_on_model
    from monosemantic.real import corpus as C
    from monosemantic.real import store as S

    tr, te = S.Store(train), S.Store(test)
    latents = 8 * tr.X.shape[1]
    t = time.perf_counter()
    ours = SparseAutoencoder("topk", latents, k=k, samples=samples, seed=0).fit(tr.X)  # streamed from the shards
    ours_wall = time.perf_counter() - t
    t = time.perf_counter()
    peer = saelens.train_topk(tr.X, latents, k, samples, Path(work) / "saelens")
    peer_wall = time.perf_counter() - t
    Xt = np.asarray(te.X[:])
    corpus = C.load("all")
    docs = [corpus.docs[i] for i in corpus.ids("test")[:texts]]
    mean = tr.mean()
    rows = {}
    for name, est, train_s, wall in (("ours", ours, ours.train_seconds_, ours_wall),
                                     (f"SAELens {peer['version']}", load(Path(work) / "saelens"), peer["train_s"],
                                      peer_wall)):
        r = score_on_model(est, Xt, SITE, docs, mean)
        rows[name] = {**{k: r[k] for k in ("fvu", "l0", "dead", "embedding_recovered", "embedding_recovered_mean",
                                           "splice_s")},
                      "train_s": train_s, "fit_wall_s": wall, "samples_per_s": samples / train_s}
    return {"latents": latents, "k": k, "samples": samples, "train_rows": len(tr), "test_rows": len(te),
            "splice_texts": len(docs), "methods": rows}


def in_child(kind: str, threads: int, *args, python: str = sys.executable) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [python, __file__, "--child", kind, *map(str, args), "--threads", str(threads)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"child {kind} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def peer_section(args, root: Path, size: int) -> dict | None:
    from common import SAELENS_INSTALL, saelens_python

    py = saelens_python(args.peers_venv)
    print(f"\nours vs SAELens at equal L0 (TopK, k {args.peer_k}, 8x latents, {args.peer_samples} samples of the "
          f"{size}-row store)")
    if not py:
        print(f"  skipped: SAELens is not installed ({SAELENS_INSTALL})")
        return None
    test = in_child("capture", args.threads, args.test_tokens, root / "store-test", "test")
    r = in_child("compare", args.threads, root / f"store-{size}", root / "store-test", args.peer_samples, args.peer_k,
                 args.splice_texts, root, python=py)
    print(f"  scored on {r['test_rows']} test-split tokens; embedding recovered over {r['splice_texts']} test documents "
          f"(against zero-ablation; mean-ablation in brackets); train s: compute only, fit s: the whole fit")
    print(f"  {'method':<17} {'FVU':>6} {'L0':>6} {'dead':>6} {'emb. rec.':>15} {'train s':>8} {'fit s':>7} "
          f"{'samples/s':>10}")
    for name, m in r["methods"].items():
        print(f"  {name:<17} {m['fvu']:>6.3f} {m['l0']:>6.1f} {m['dead']:>6} "
              f"{m['embedding_recovered']:>6.3f} ({m['embedding_recovered_mean']:.3f}) {m['train_s']:>8.1f} "
              f"{m['fit_wall_s']:>7.1f} {m['samples_per_s']:>10.0f}")
    ours, theirs = r["methods"]["ours"], next(v for k, v in r["methods"].items() if k != "ours")
    print(f"  ours / SAELens: samples/s x{ours['samples_per_s'] / theirs['samples_per_s']:.2f}, "
          f"FVU {ours['fvu'] - theirs['fvu']:+.3f}, embedding recovered "
          f"{ours['embedding_recovered'] - theirs['embedding_recovered']:+.3f}")
    return {**r, "test_capture": test}


def sae_sections(args, root: Path, sizes: list[int], report: dict) -> None:
    """SAE training on each store, in memory against streamed, and (unless --skip-peer) ours against SAELens."""
    print("\nSAE training streamed from each store (TopK, 8x = 3072 latents, k 32, batch 1024), one pass over its "
          "rows, each in a fresh process")
    print(f"{'rows':>9} {'samples':>9} {'train s':>8} {'samples/s':>10} {'peak RSS MB':>12} {'anon MB':>8}")
    per = []
    for n in sizes:
        r = in_child("sae", args.threads, root / f"store-{n}", n, "store")
        per.append(r)
        print(f"{n:>9} {r['samples']:>9} {r['wall_s']:>8.1f} {r['samples_per_s']:>10.0f} {r['peak_rss_mb']:>12.0f} "
              f"{r['peak_anon_mb']:>8.0f}")
    if len(per) > 1:
        a, b = per[0], per[-1]
        print(f"rows x{sizes[-1] / sizes[0]:.0f}: train s x{b['wall_s'] / a['wall_s']:.2f}, samples/s "
              f"x{b['samples_per_s'] / a['samples_per_s']:.2f}; peak RSS {b['peak_rss_mb'] - a['peak_rss_mb']:+.0f} MB, "
              f"anon {b['peak_anon_mb'] - a['peak_anon_mb']:+.0f} MB")
    report["sae_per_size"] = per

    store = root / f"store-{sizes[-1]}"
    print(f"\nSAE training (TopK, 8x = 3072 latents, k 32, batch 1024, {args.sae_samples} samples) on the "
          f"{sizes[-1]}-row store")
    sae = {mode: in_child("sae", args.threads, store, args.sae_samples, mode) for mode in ("memory", "store")}
    for mode, r in sae.items():
        label = "in-memory array (baseline)" if mode == "memory" else "store, streamed from disk"
        print(f"  {label:<28} {r['samples_per_s']:>8.0f} samples/s  peak RSS {r['peak_rss_mb']:>6.0f} MB  "
              f"anon {r['peak_anon_mb']:>6.0f} MB  "
              f"FVU {r['fvu_first_10k']:.3f}")
    print(f"  store / in-memory: {sae['store']['samples_per_s'] / sae['memory']['samples_per_s']:.2f}x samples/s")
    report["sae"] = sae
    if not args.skip_peer:
        report["peer"] = peer_section(args, root, sizes[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[65_536, 131_072, 262_144])
    ap.add_argument("--million", action="store_true", help="add 1,048,576 tokens")
    ap.add_argument("--sae-samples", type=int, default=65_536, help="in-memory vs store on the largest store")
    ap.add_argument("--peer-samples", type=int, default=131_072, help="training samples of ours and SAELens's")
    ap.add_argument("--peer-k", type=int, default=32)
    ap.add_argument("--test-tokens", type=int, default=8192, help="test-split tokens the two SAEs are scored on")
    ap.add_argument("--splice-texts", type=int, default=128, help="test documents for embedding recovered")
    ap.add_argument("--peers-venv", help="a venv with sae-lens (default: this Python, $PEERS_DIR/venv, .peers/venv)")
    ap.add_argument("--skip-peer", action="store_true", help="skip the SAELens comparison")
    ap.add_argument("--skip-sae", action="store_true", help="capture only: skip SAE training and the comparison")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--keep", type=Path, help="keep the stores under this directory")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        global ANON
        ANON = PeakAnon()
        kind, *rest = args.child
        if kind == "capture":
            out = child_capture(int(rest[0]), rest[1], *rest[2:])
        elif kind == "forward":
            out = child_forward(int(rest[0]))
        elif kind == "compare":
            out = child_compare(rest[0], rest[1], int(rest[2]), int(rest[3]), int(rest[4]), rest[5])
        else:
            out = child_sae(rest[0], int(rest[1]), rest[2] == "memory")
        print(json.dumps(out))
        return

    from common import machine

    print(f"machine: {machine()}")
    sizes = args.sizes + ([1 << 20] if args.million else [])
    root = args.keep or Path(tempfile.mkdtemp(prefix="real_model_"))
    root.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "site": SITE, "threads": args.threads}

    print("\ncapture at resid.3 of the `all` corpus, each size in a fresh process. wall and CPU s: capture compute")
    print("(planning included); forward: a bare forward pass of the whole model measured in the same process just")
    print("before, so `vs forward` compares the two under the same load")
    print("(peak RSS: the process's peak resident memory; anon MB: the peak of its anonymous part, without the")
    print("memory-mapped store pages)")
    print(f"{'tokens':>9} {'wall s':>8} {'CPU s':>7} {'tokens/s':>9} {'forward/s':>9} {'vs forward':>10} "
          f"{'peak RSS MB':>12} {'anon MB':>8}")
    rows = []
    for n in sizes:
        r = in_child("capture", args.threads, n, root / f"store-{n}")
        rows.append(r)
        print(f"{n:>9} {r['wall_s']:>8.1f} {r['cpu_s']:>7.1f} {r['tokens_per_s']:>9.0f} "
              f"{r['forward_tokens_per_s']:>9.0f} {r['tokens_per_s'] / r['forward_tokens_per_s']:>9.2f}x "
              f"{r['peak_rss_mb']:>12.0f} {r['peak_anon_mb']:>8.0f}")
    report["capture"] = rows
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"tokens x{sizes[-1] / sizes[0]:.0f}: wall x{b['wall_s'] / a['wall_s']:.2f}, CPU x{b['cpu_s'] / a['cpu_s']:.2f}"
              f"; peak RSS {b['peak_rss_mb'] - a['peak_rss_mb']:+.0f} MB, anon {b['peak_anon_mb'] - a['peak_anon_mb']:+.0f} MB")

    if not args.skip_sae:
        sae_sections(args, root, sizes, report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)  # only the temporary directory this run made


if __name__ == "__main__":
    main()
