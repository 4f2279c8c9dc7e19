"""Hybrid training speed: each change (autograd, `toy.hybrids`) and the plain hand-written trainer against the
paper's notebook-style reference (einsum model, autograd, torch.optim.AdamW), same run, same sizes.

Config: n=20, m=5, S=0.9, 3 instances (one per strength, as in road 3's front), batch 1024, uniform importance.
Prints model-steps/s of each and its ratio to the reference's. With --front, the whole default front as `road3` runs
it (resumable points on --workers processes, a TopK SAE fitted on every point): its wall time, and its model-steps/s
end to end (every point's training steps over the sweep's whole wall time, the SAE fits and the scoring included)
against the same reference.

usage: python benchmarks/hybrids.py [--steps 1000] [--front] [--workers 2]
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
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the front's sweep")
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
        cfg = Road3Config(device="cpu")
        t = time.perf_counter()
        res = front(cfg, workers=a.workers)
        wall = time.perf_counter() - t
        trained = 1 + sum(len(v) for v in cfg.strengths.values()) + len(cfg.road1)  # models, cfg.steps each
        rate = trained * cfg.steps / wall
        print(f"default front (n={cfg.n} m={cfg.m}, {res['points']} points: 4 changes x 3 strengths, road1 x"
              f"{len(cfg.road1)}, road2; {cfg.steps} steps each, a {cfg.arch} SAE of {cfg.ratio:g}n on every point), "
              f"{a.workers} workers: {wall:.1f}s wall, {res['wall_s']:.1f}s of compute")
        print(f"{'front end to end':>22}: {rate:9.0f} model-steps/s  {rate / ref:5.2f}x reference "
              f"({trained} models x {cfg.steps} steps / wall)")
        for k, v in res["model_steps_per_s"].items():
            print(f"{'training ' + k:>22}: {v:9.0f} model-steps/s  {v / ref:5.2f}x reference")


if __name__ == "__main__":
    main()
