"""Toy-model training speed: our trainer against the paper's notebook-style reference, same run.

Config: n=20, m=5, 20 instances, feature probability 20^-linspace(0,1,20), I_i = 0.9^i,
batch 1024, 2000 steps, AdamW lr 1e-3 (weight decay 0.01 for both). The reference trains the way the
public notebook does: W [instances, n, m] in one einsum model, two dense torch.rand draws per step,
autograd, torch.optim.AdamW. Both models' final losses are evaluated on the same fixed batch of
65,536 samples with the same loss (mean over samples of sum_i I_i (x_i - x'_i)^2). Finally the CLI
runs the same configuration and its own `model_steps_per_s` is compared with the reference's.

Target: >= 8x the reference's model-steps/s, mean final loss no worse than the reference's by > 2%.

usage: python benchmarks/toy_training.py [--steps 2000] [--repeats 1] [--device cpu]
(--device cuda trains both, the reference and ours, on the GPU; the evaluation runs on the CPU.)
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, notebook_train  # noqa: E402

from monosemantic.devices import resolve  # noqa: E402
from monosemantic.toy.sampler import FeatureSampler, importance  # noqa: E402
from monosemantic.toy.models import loss_per_instance, make_model  # noqa: E402
from monosemantic.toy.train import train_toy  # noqa: E402

N, M, INSTANCES, BATCH, EVAL = 20, 5, 20, 1024, 65_536


def reference(probs, imp, steps, seed=0, device=torch.device("cpu")):
    """The notebook's way: einsum over instances, two dense rand draws, autograd, torch.optim.AdamW."""
    g = torch.Generator().manual_seed(seed)
    W = torch.empty(INSTANCES, N, M)
    for i in range(INSTANCES):
        torch.nn.init.xavier_normal_(W[i], generator=g)
    g_dev = g if device.type == "cpu" else torch.Generator(device).manual_seed(seed)
    wall, W, b = notebook_train(W.to(device), probs.to(device), imp.to(device), steps, BATCH, g_dev)
    return wall, W.cpu(), b.cpu()


def eval_loss(W, b, x_eval, weight):
    model = make_model("relu-output", INSTANCES, N, M, list(range(INSTANCES)))
    model.load({"W": W, "b": b})
    return loss_per_instance(model, x_eval, weight)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=1, help="alternate reference/ours this many times; best of each")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto: where both train")
    a = ap.parse_args()
    device = resolve(a.device)
    probs = 20 ** -torch.linspace(0, 1, INSTANCES)
    imp = importance(N, 0.9)
    p = probs[:, None].expand(INSTANCES, N).contiguous()
    weight = imp.expand(INSTANCES, N).reshape(INSTANCES, 1, N)
    x_eval = FeatureSampler(p, seed=12345).sample_into(torch.empty(INSTANCES, EVAL, N))

    print(f"machine: {machine()}")
    print(f"config: n={N} m={M} instances={INSTANCES} batch={BATCH} steps={a.steps}, eval on {EVAL} fixed samples, "
          f"training on {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    ref_s, ours_s = [], []
    for _ in range(a.repeats):
        wall, W_ref, b_ref = reference(probs, imp, a.steps, device=device)
        ref_s.append(wall)
        run = train_toy("relu-output", N, M, p, imp, a.steps, BATCH, seeds=1, seed=0, eval_batch=1024, device=device)
        ours_s.append(run.log.wall_s)
    ref_rate = INSTANCES * a.steps / min(ref_s)
    ours_rate = INSTANCES * a.steps / min(ours_s)
    loss_ref = eval_loss(W_ref, b_ref, x_eval, weight)
    loss_ours = eval_loss(run.model.W.cpu(), run.model.b.cpu(), x_eval, weight)

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "monosemantic.cli", "toy", "train", "--model", "relu-output", "--n", str(N),
               "--m", str(M), "--sparsity", *[str(float(1 - q)) for q in probs], "--importance-decay", "0.9",
               "--steps", str(a.steps), "--batch", str(BATCH), "--seeds", "1", "--seed", "0", "--no-progress",
               "--device", str(device),
               "--out", f"{tmp}/run"]
        subprocess.run(cmd, check=True, capture_output=True)
        cli_rate = json.loads(Path(f"{tmp}/run/result.json").read_text())["model_steps_per_s"]

    print(f"reference (notebook-style einsum + autograd + torch.optim.AdamW): {min(ref_s):7.2f} s  "
          f"{ref_rate:9.0f} model-steps/s")
    print(f"monosemantic train_toy:                                          {min(ours_s):7.2f} s  "
          f"{ours_rate:9.0f} model-steps/s")
    print(f"monosemantic CLI (toy train, its result.json model_steps_per_s):           {cli_rate:9.0f} model-steps/s")
    print(f"speed ratio: {ours_rate / ref_rate:.1f}x (library), {cli_rate / ref_rate:.1f}x (CLI)   target >= 8x")
    print(f"final loss per instance on the same {EVAL:,} samples "
          f"(feature probability {float(probs[0]):.2g} -> {float(probs[-1]):.2g}):")
    print("  reference: " + " ".join(f"{v:.4f}" for v in loss_ref.tolist()))
    print("  ours:      " + " ".join(f"{v:.4f}" for v in loss_ours.tolist()))
    rel = loss_ours.mean().item() / loss_ref.mean().item() - 1
    print(f"mean final loss: reference {loss_ref.mean():.5f}, ours {loss_ours.mean():.5f} ({100 * rel:+.2f}%)   "
          f"target <= +2%")


if __name__ == "__main__":
    main()
