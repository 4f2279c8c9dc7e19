"""Hybrid training speed: each change (autograd, `toy.hybrids`) and the plain hand-written trainer against the
paper's notebook-style reference (einsum model, autograd, torch.optim.AdamW), same run, same sizes.

Config: n=20, m=5, S=0.9, 3 instances (one per strength, as in road 3's front), batch 1024, uniform importance.
Prints model-steps/s of each and its ratio to the reference's; then the whole default front's wall time.

usage: python benchmarks/hybrids.py [--steps 1000] [--front]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, notebook_train  # noqa: E402

from monosemantic.experiments.hybrids import Road3Config, default_strengths, front, train_change  # noqa: E402

N, M, S, BATCH = 20, 5, 0.9, 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--front", action="store_true", help="also time the whole default front (minutes)")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"config: n={N} m={M} S={S} 3 instances batch={BATCH} steps={a.steps}")
    g = torch.Generator().manual_seed(0)
    W = torch.empty(3, N, M)
    for i in range(3):
        torch.nn.init.xavier_normal_(W[i], generator=g)
    ref_s, _, _ = notebook_train(W, torch.full((3,), 1 - S), torch.ones(N), a.steps, BATCH, g)
    ref = 3 * a.steps / ref_s
    print(f"{'notebook reference':>22}: {ref:9.0f} model-steps/s")
    cfg = Road3Config(n=N, m=M, sparsity=S, steps=a.steps, batch=BATCH, device="cpu")
    for change in (None, *default_strengths()):
        strengths = [0.0, 0.0, 0.0] if change is None else default_strengths()[change]
        _, _, run, _ = train_change(cfg, change, strengths)
        rate = len(strengths) * run.log.steps_done / run.log.wall_s
        print(f"{change or 'plain (hand gradient)':>22}: {rate:9.0f} model-steps/s  {rate / ref:5.2f}x reference")
    if a.front:
        t = time.perf_counter()
        res = front(Road3Config(device="cpu"))
        print(f"default front (n={N} m={M}, 4 changes x 3 strengths, road1 x3, road2): "
              f"{time.perf_counter() - t:.1f}s wall, training {res['model_steps_per_s']}")


if __name__ == "__main__":
    main()
