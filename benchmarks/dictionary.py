"""Dictionary learning against ground truth: our SAEs vs SAELens and scikit-learn, in one run.

Data: 512 random unit features in d = 128, each on with p = 5/512, magnitudes U(0, 1),
200k samples, seed 0 (`monosemantic data synth`); the last 10k held out. Every method's held-out recovery is scored every few
hundred steps with the training clock paused. Printed for each: wall time (training compute only) and
samples to reach recovered@0.9 >= 0.98, and the final FVU, L0, MMCS and recovered@0.9.

* ours TopK (k 5) and ours ReLU + L1 (l1 0.1): our defaults, nothing tuned per run.
* SAELens 6 TopK (k 5) and standard ReLU + L1 (l1 0.1): the peers' settings (lr 1e-3, batch 1024, 20 epochs),
  run by `_saelens_runner.py` in a fresh process, with this Python when it has SAELens (the `bench` extra:
      pip install -c requirements.lock '.[bench]'
  ) or with the Python of another venv (--peers-venv DIR, else $PEERS_DIR/venv or .peers/venv). Without SAELens its
  rows are skipped.
* scikit-learn MiniBatchDictionaryLearning (alpha 0.1, batch 1024, 300 batches, float64): the peers' setting.

Targets: ours reaches recovered@0.9 >= 0.98 >= 3x sooner than SAELens for TopK and >= 2x sooner for
ReLU + L1, ending at MMCS >= 0.996 with FVU no higher than SAELens's. Then samples/s and peak memory (max RSS
of a fresh process) of one TopK training step loop at 16,384 latents on d = 768 (k 32, batch 1024), ours and SAELens.

usage: python benchmarks/dictionary.py [--threads N] [--peers-venv DIR] [--eval-every 200] [--skip-sklearn]
                                      [--skip-scale] [--json FILE]
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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import SAELENS_INSTALL, machine, saelens_python  # noqa: E402

import monosemantic.recovery as R  # noqa: E402
from monosemantic.data import save_data, split, synth_uniform  # noqa: E402
from monosemantic.dictionary import MiniBatchDictionary, SparseAutoencoder  # noqa: E402

HERE = Path(__file__).parent
TARGET_REC = 0.98


def evaluator(F, ev, traj, fvu_every=True):
    """A fit callback: scores held-out data into traj (its time is not counted as training)."""
    def cb(est, step, samples, train_s):
        s = R.dictionary_scores(F, est.components_)
        row = dict(step=step, samples=samples, train_s=train_s, **s)
        if fvu_every:
            C = est.transform(ev.X)
            row.update(fvu=R.fvu(ev.X, est.inverse_transform(C)), l0=R.l0(C))
        traj.append(row)
    return cb


def first_reaching(traj, target=TARGET_REC):
    hit = next((r for r in traj if r["recovered"] >= target), None)
    return (hit["train_s"], hit["samples"]) if hit else (None, None)


def final_scores(est, F, ev):
    C = est.transform(ev.X)
    return dict(fvu=R.fvu(ev.X, est.inverse_transform(C)), l0=R.l0(C), dead=R.dead_latents(C),
                **R.dictionary_scores(F, est.components_))


def run_ours(arch, tr, ev, F, eval_every, device="cpu"):
    traj = []
    est = SparseAutoencoder(arch=arch, n_latents=len(F), k=5, l1=0.1 if arch == "relu" else None, device=device)
    est.fit(tr.X, callback=evaluator(F, ev, traj), eval_every=eval_every)
    t, n = first_reaching(traj)
    return dict(method=f"ours {'TopK' if arch == 'topk' else 'ReLU+L1'}", train_s=est.train_seconds_,
                samples=est.step_ * est.batch, samples_per_s=est.step_ * est.batch / est.train_seconds_,
                time_to_target=t, samples_to_target=n, trajectory=traj, **final_scores(est, F, ev))


def run_saelens(py, data_path, arch, eval_every_samples):
    cmd = [py, str(HERE / "_saelens_runner.py"), str(data_path), "--arch", arch,
           "--eval-every", str(max(1, eval_every_samples // 1024))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  SAELens {arch} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    r = json.loads(out.stdout.strip().splitlines()[-1])
    traj = r["trajectory"]
    t, n = first_reaching(traj)
    last = traj[-1]
    return dict(method=f"SAELens {r['version']} {'TopK' if arch == 'topk' else 'ReLU+L1'}", train_s=r["train_s"],
                samples=r["samples"], samples_per_s=r["samples_per_s"], time_to_target=t, samples_to_target=n,
                trajectory=traj, **{k: last[k] for k in ("fvu", "l0", "dead", "mmcs", "recovered", "mcc_hungarian")})


def run_sklearn(tr, ev, F):
    traj = []
    est = MiniBatchDictionary(len(F), alpha=0.1, samples=300 * 1024, batch=1024)
    est.fit(tr.X, callback=evaluator(F, ev, traj, fvu_every=False), eval_every=20)
    t, n = first_reaching(traj)
    return dict(method="sklearn MiniBatchDictionaryLearning", train_s=est.train_seconds_, samples=est.step_ * 1024,
                samples_per_s=est.step_ * 1024 / est.train_seconds_, time_to_target=t, samples_to_target=n,
                trajectory=traj, **final_scores(est, F, ev))


def scale_worker(steps=20, warm=3):
    """Run in its own process, so that its max RSS is its own: our TopK fit at 16,384 x 768, steps timed by fit."""
    d, n, k, B = 768, 16384, 32, 1024
    X = torch.randn(B * 8, d)
    est = SparseAutoencoder("topk", n, k, samples=(steps + warm) * B, batch=B, resample_every=0, warmup=0.1)
    times = []
    est.fit(X, callback=lambda e, step, samples, train_s: times.append(train_s), eval_every=1)
    wall = times[-1] - times[warm - 1]
    return dict(samples_per_s=steps * B / wall, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_scale(peers_py):
    rows = []
    out = subprocess.run([sys.executable, __file__, "--scale-worker"], capture_output=True, text=True)
    if out.returncode == 0:
        rows.append(dict(method="ours TopK", **json.loads(out.stdout.strip().splitlines()[-1])))
    else:
        print(out.stderr[-2000:], file=sys.stderr)
    if peers_py:
        out = subprocess.run([peers_py, str(HERE / "_saelens_runner.py"), "--scale"], capture_output=True, text=True)
        if out.returncode == 0:
            rows.append(dict(method="SAELens TopK", **json.loads(out.stdout.strip().splitlines()[-1])))
        else:
            print(out.stderr[-2000:], file=sys.stderr)
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers-venv", default=os.environ.get("PEERS_VENV"),
                    help="a venv with sae-lens installed (default: this Python, when it has sae_lens)")
    ap.add_argument("--eval-every", type=int, default=200, help="our steps (batch 256) between held-out scorings")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--scale-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write every figure and trajectory here")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for every method (default: torch's; 1 is steadier on a busy machine)")
    ap.add_argument("--device", default="cpu", help="where our SAEs train: cpu | cuda | cuda:N | auto (SAELens's "
                                                     "runner trains on the CPU)")
    a = ap.parse_args()
    if a.threads:  # the SAELens and scale subprocesses inherit it through the environment
        torch.set_num_threads(a.threads)
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    if a.scale_worker:
        print(json.dumps(scale_worker()))
        return
    print(f"machine: {machine()}")
    data = synth_uniform(512, 128, 5, 200_000, seed=0)
    tr, ev = split(data, 10_000)
    F = data.F
    peers_py = saelens_python(a.peers_venv)
    if not peers_py:
        print(f"SAELens not found: its rows are skipped (install: {SAELENS_INSTALL}, or pass --peers-venv DIR).")
    rows = []
    for arch, sl_arch in (("topk", "topk"), ("relu", "standard")):
        rows.append(run_ours(arch, tr, ev, F, a.eval_every, a.device))
        print(f"  {rows[-1]['method']}: done in {rows[-1]['train_s']:.1f}s", file=sys.stderr, flush=True)
        if peers_py:
            with tempfile.TemporaryDirectory() as tmp:
                path = save_data(Path(tmp) / "s5.npz", data)
                r = run_saelens(peers_py, path, sl_arch, a.eval_every * 256)
            if r:
                rows.append(r)
                print(f"  {r['method']}: done in {r['train_s']:.1f}s", file=sys.stderr, flush=True)
    if not a.skip_sklearn:
        rows.append(run_sklearn(tr, ev, F))
    print(f"\nsection-5 data: 512 features, d 128, k 5; 190k train / 10k held out; target recovered@0.9 >= {TARGET_REC}")
    head = f"{'method':<40} {'s to 0.98':>9} {'samples':>9} {'train s':>8} {'samples/s':>9} {'FVU':>7} " \
           f"{'L0':>5} {'dead':>4} {'MMCS':>7} {'rec@0.9':>7}"
    print(head)
    for r in rows:
        print(f"{r['method']:<40} {fmt(r['time_to_target'], '9.1f')} {fmt(r['samples_to_target'], '9d')} "
              f"{r['train_s']:8.1f} {r['samples_per_s']:9.0f} {r['fvu']:7.4f} {r['l0']:5.2f} {r['dead']:4d} "
              f"{r['mmcs']:7.4f} {r['recovered']:7.3f}")
    by = {r["method"].split()[0] + " " + r["method"].split()[-1]: r for r in rows}
    for name, want in (("TopK", 3.0), ("ReLU+L1", 2.0)):
        ours, theirs = by.get(f"ours {name}"), by.get(f"SAELens {name}")
        if not ours:
            continue
        if theirs and ours["time_to_target"] and theirs["time_to_target"]:
            ratio = theirs["time_to_target"] / ours["time_to_target"]
            print(f"{name}: ours reaches recovered@0.9 >= {TARGET_REC} {ratio:.1f}x sooner than SAELens "
                  f"(target >= {want:.0f}x: {'met' if ratio >= want else 'NOT met'}); "
                  f"{theirs['samples_to_target'] / ours['samples_to_target']:.1f}x fewer samples")
        elif theirs:
            print(f"{name}: time-to-target missing (ours {ours['time_to_target']}, SAELens {theirs['time_to_target']})")
        fvu_vs = f" vs SAELens {theirs['fvu']:.4f} ({'met' if ours['fvu'] <= theirs['fvu'] else 'NOT met'})" if theirs else ""
        print(f"{name}: final MMCS {ours['mmcs']:.4f} (target >= 0.996: {'met' if ours['mmcs'] >= 0.996 else 'NOT met'}), "
              f"FVU {ours['fvu']:.4f}{fvu_vs}")
    scale = [] if a.skip_scale else run_scale(peers_py)
    if scale:
        print("\nTopK at 16,384 latents on d = 768 (k 32, batch 1024, random data, 20 timed steps):")
        for r in scale:
            print(f"  {r['method']:<14} {r['samples_per_s']:9.0f} samples/s   peak RSS {r['peak_rss_mb']:7.0f} MB")
        if len(scale) == 2:
            print(f"  ratio ours / SAELens: {scale[0]['samples_per_s'] / scale[1]['samples_per_s']:.2f}x samples/s, "
                  f"{scale[0]['peak_rss_mb'] / scale[1]['peak_rss_mb']:.2f}x peak memory")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(machine=machine(), rows=rows, scale=scale), indent=1))


if __name__ == "__main__":
    main()
