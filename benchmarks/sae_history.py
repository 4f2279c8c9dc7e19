"""What the SAE's training history (`history_`: loss, MSE, FVU, L0 and dead latents every few steps) costs:
training compute with the history (the default, about 200 records per fit) against `history_every=0` (none),
fitted alternately on the same data (wall and CPU time), plus the per-step CPU cost of the bookkeeping alone.

usage: python benchmarks/sae_history.py [--repeat 5] [--samples 150000]
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from monosemantic.data import synth_uniform  # noqa: E402
from monosemantic.dictionary import SparseAutoencoder  # noqa: E402
from monosemantic.dictionary.estimator import _Window  # noqa: E402

SIZES = {"demo quick (n 96, d 48, k 3)": (96, 48, 3), "section 5 (n 512, d 128, k 5)": (512, 128, 5)}


def fit_seconds(X, n, k, samples, history_every, arch) -> tuple[float, float]:
    """(training wall seconds, CPU seconds of the whole fit): CPU time is less sensitive to other processes."""
    t = time.process_time()
    sae = SparseAutoencoder(arch, n, k, samples=samples, history_every=history_every).fit(X)
    return sae.train_seconds_, time.process_time() - t


def bookkeeping_seconds(X, n, k, steps: int = 2000) -> float:
    """Seconds per step of the history's own work on a real step's info (no training)."""
    sae = SparseAutoencoder("topk", n, k, samples=256 * 10).fit(X)
    info = {"mse": 0.1, "l0": 3.0, "aux": 0.0}
    w = _Window()
    t = time.process_time()
    for i in range(steps):
        w.add(info)
        if i % 50 == 49:
            w.record(sae)
    return (time.process_time() - t) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--samples", type=int, default=150_000)
    a = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    for label, (n, d, k) in SIZES.items():
        X = synth_uniform(n, d, k, 30_000, seed=1).X
        for arch in ("topk", "relu"):
            off, on = [], []
            for _ in range(a.repeat):  # alternate, so that load drifts hit both alike
                off.append(fit_seconds(X, n, k, a.samples, 0, arch))
                on.append(fit_seconds(X, n, k, a.samples, None, arch))
            steps = a.samples // 256
            per_step = bookkeeping_seconds(X, n, k)
            wall = [min(w for w, _ in r) for r in (off, on)]
            cpu = [min(c for _, c in r) for r in (off, on)]
            print(f"{label}, {arch}, {steps} steps (best of {a.repeat}): training wall without history "
                  f"{wall[0]:.3f} s, with {wall[1]:.3f} s (ratio {wall[1] / wall[0]:.3f}); CPU {cpu[0]:.3f} s, "
                  f"{cpu[1]:.3f} s (ratio {cpu[1] / cpu[0]:.3f}); bookkeeping alone {per_step * 1e6:.1f} us CPU "
                  f"per step = {per_step * steps / cpu[0]:.2%} of the fit's CPU time")


if __name__ == "__main__":
    main()
