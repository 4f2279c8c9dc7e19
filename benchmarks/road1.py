"""Road 1 benchmark: the full L1 sweep as one batched model, and the MoE comparison.

1. The lambda sweep: 12 log-spaced lambdas x 3 seeds, n=20, m=5, ReLU hidden layer, S=0.9,
   10k steps, as 36 instances of one batched model (target: under 2 minutes on 2 cores). Baseline, in
   the same run and for 1,000 steps: the same sweep trained one lambda at a time (3 seeds each).
2. The MoE comparison (dense m=5, MoE top-1 of 4 experts of 5, dense 20; 4 sparsities x 2 seeds, 10k steps).
   The MoE trains with autograd; its ratio is against the dense m=5 model (hand-written gradients) of the same run.

Prints wall times (training compute only) and the machine. Timings vary by up to 25% between runs.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from monosemantic.toy.sampler import importance, probabilities  # noqa: E402
import monosemantic.experiments.road1 as road1  # noqa: E402
from monosemantic.toy.train import train_toy  # noqa: E402


def sweep_sequential(lambdas: list[float], steps: int) -> float:
    """Training seconds of the sweep trained one lambda at a time (the baseline)."""
    n, m = 20, 5
    total = 0.0
    for lam in lambdas:
        run = train_toy("relu-hidden", n, m, probabilities([0.9], n), importance(n, 0.7), steps, 1024, 3, 0, l1=lam)
        total += run.log.wall_s
    return total


def main() -> None:
    print(f"machine: {machine()}")
    lambdas = road1.default_lambdas(12)[1:]  # 12 log-spaced values, 0.003 to 2
    short = 1000
    batched_short = road1.l1_sweep(lambdas, steps=short, seeds=3)["wall_s"]
    seq_short = sweep_sequential(lambdas, short)
    print(f"L1 sweep, {len(lambdas)} lambdas x 3 seeds, {short} steps: batched {batched_short:.2f}s, one lambda at a "
          f"time {seq_short:.2f}s, ratio {seq_short / batched_short:.1f}x")

    t = time.perf_counter()
    sw = road1.l1_sweep(lambdas, steps=10_000, seeds=3)
    total = time.perf_counter() - t
    print(f"L1 sweep, {len(lambdas)} lambdas x 3 seeds = {sw['instances_trained']} instances, 10000 steps: "
          f"training {sw['wall_s']:.1f}s, with measures {total:.1f}s "
          f"({sw['model_steps_per_s']:.0f} kept model-steps/s); target < 120s: {'met' if total < 120 else 'MISSED'}")
    for line in road1.l1_lines(sw):
        print(f"  {line}")

    t = time.perf_counter()
    mo = road1.moe_compare([0.7, 0.9, 0.97, 0.99], steps=10_000, seeds=2)
    total = time.perf_counter() - t
    dense = mo["models"][mo["dense_names"][0]]
    print(f"MoE comparison, 4 sparsities x 2 seeds, 10000 steps: {total:.1f}s in all")
    for name, rec in mo["models"].items():
        print(f"  {name:<16} training {rec['wall_s']:.1f}s ({rec['wall_s'] / dense['wall_s']:.1f}x dense m=5)  "
              f"loss {[round(v, 5) for v in rec['loss']]}  D* {[v and round(v, 3) for v in rec['dims_per_feature']]}  "
              f"monosemantic {rec['monosemantic_neurons']} of {rec['used_neurons']}")


if __name__ == "__main__":
    main()
