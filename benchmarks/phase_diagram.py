"""The n=2, m=1 phase diagram: our sweep against a notebook-style reference trainer, same run.

Config: 20 x 20 grid, r = I_2/I_1 in [0.1, 10] and density 1-S in [0.01, 1] (both log),
3 starts per point (the three ideal layouts [1,0], [0,1], [1,-1], perturbed by 0.01: the same start
tensors for both trainers), 2,000 steps, batch 1024, AdamW lr 1e-3, weight decay 0.01; 1,200 models.

- ours: `phase.n2m1`, the sweep machinery (local backend, one worker process per core), from the
  spec to labelled points; timed end to end (process start-up included) and as training compute.
- reference: the public notebook's way (benchmarks/common.py `notebook_train`): one einsum model over
  the 1,200 instances, two dense torch.rand draws per step, autograd, torch.optim.AdamW, torch's
  default threads. Its best start per point is picked by loss on a fixed evaluation batch (not timed).

Targets: >= 8x faster wall time; the same label (feature 1 only / feature 2 only / both) on >= 95% of points.

usage: python benchmarks/phase_diagram.py [--steps 2000] [--grid 20] [--workers 2]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, notebook_train  # noqa: E402

import monosemantic.experiments.phase as phase  # noqa: E402
from monosemantic.toy.sampler import FeatureSampler  # noqa: E402
from monosemantic.experiments.sweeps import initial_weights, plan  # noqa: E402
from monosemantic.toy.models import loss_per_instance, make_model  # noqa: E402

BATCH, EVAL = 1024, 16384


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--grid", type=int, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"config: n=2 m=1, {a.grid}x{a.grid} points x 3 starts = {3 * a.grid**2} models, batch {BATCH}, "
          f"{a.steps} steps; ours with {a.workers} worker processes")

    t = time.perf_counter()
    ours = phase.n2m1(grid=a.grid, steps=a.steps, workers=a.workers)
    ours_wall = time.perf_counter() - t

    spec = phase.n2m1_spec(a.grid, a.steps)
    points, _ = plan(spec)
    cfgs = [pt["config"] for pt in points]
    starts = cfgs[0].starts
    probs = torch.tensor([c.p for c in cfgs]).repeat_interleave(starts)
    imp = torch.tensor([c.importance for c in cfgs]).repeat_interleave(starts, dim=0)
    W0 = torch.cat([initial_weights(c, spec.seed) for c in cfgs])
    ref_wall, W_ref, b_ref = notebook_train(W0.transpose(1, 2).contiguous(), probs, imp, a.steps, BATCH,
                                            torch.Generator().manual_seed(0))

    model = make_model("relu-output", len(probs), 2, 1, list(range(len(probs))))
    model.load({"W": W_ref, "b": b_ref})
    x_eval = FeatureSampler(probs[:, None].expand(-1, 2).contiguous(), seed=12345).sample_into(
        torch.empty(len(probs), EVAL, 2))
    eval_loss = loss_per_instance(model, x_eval, imp[:, None, :]).reshape(len(cfgs), starts)
    kept = torch.arange(len(cfgs)) * starts + eval_loss.argmin(1)
    ref = phase.n2m1_analyse(ours["r"], ours["density"], W_ref[kept])

    same = float((np.asarray(ours["labels"]) == np.asarray(ref["labels"])).mean())
    print(f"reference (notebook-style einsum + autograd + torch.optim.AdamW, {torch.get_num_threads()} threads): "
          f"{ref_wall:8.2f} s  {len(probs) * a.steps / ref_wall:9.0f} model-steps/s")
    print(f"monosemantic phase.n2m1 (sweep, local backend), end to end:                   {ours_wall:8.2f} s  "
          f"{len(probs) * a.steps / ours_wall:9.0f} model-steps/s")
    print(f"  of which training compute, summed over workers: {ours['wall_s']:.2f} s")
    print(f"speed ratio: {ref_wall / ours_wall:.1f}x (wall)   target >= 8x")
    print(f"same label on {same:.1%} of {a.grid**2} points   target >= 95%")
    print(f"agreement with the analytic diagram away from the boundary: ours {ours['agreement_far']:.1%}, "
          f"reference {ref['agreement_far']:.1%} ({ours['far_points']} points); "
          f"all points: ours {ours['agreement_all']:.1%}, reference {ref['agreement_all']:.1%}")


if __name__ == "__main__":
    main()
