"""Byte-LM training speed: our trainer (`lm.train.train`: the project's AdamW, clipping, cosine schedule, loss log)
against the same model trained by a plain loop written the obvious way (torch.optim.AdamW over
model.parameters(), the model's loss, backward, clip, step), in the same run, on the same batches.

Then where our trainer's step time goes (batch draw, forward with the loss, backward, clipping, optimiser), and
optionally the whole comparison's wall time at the documented budget (`lm roads` defaults: about an hour).

usage: python benchmarks/lm.py [--steps 100] [--variant dense] [--roads]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from monosemantic.lm.data import batch_at, split_bytes  # noqa: E402
from monosemantic.lm.model import ByteLM  # noqa: E402
from monosemantic.lm.train import BETAS, CLIP, LMTrainConfig, train  # noqa: E402


def plain_loop(cfg: LMTrainConfig, data: torch.Tensor) -> float:
    """Seconds for cfg.steps steps of the obvious loop (same model, init, batches and lr schedule shape)."""
    model = ByteLM(cfg.model, cfg.seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=BETAS, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    start = time.perf_counter()
    for step in range(cfg.steps):
        x, y = batch_at(data, step, cfg.seed, cfg.batch, cfg.context)
        loss = model.losses(x, y)["total"]  # cross-entropy plus the variant's term, as nanoGPT's model returns it
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        sched.step()
    return time.perf_counter() - start


def breakdown(cfg: LMTrainConfig, data: torch.Tensor, steps: int) -> dict[str, float]:
    """Seconds per phase of our trainer's step, summed over `steps` steps."""
    from monosemantic.lm.train import _optimizers
    from monosemantic.optim import lr_at

    model = ByteLM(cfg.model, cfg.seed).train()
    opts = _optimizers(model, cfg)
    t = dict.fromkeys(("batch", "forward + loss", "backward", "clip", "AdamW step"), 0.0)
    for step in range(steps):
        a = time.perf_counter()
        x, y = batch_at(data, step, cfg.seed, cfg.batch, cfg.context)
        b = time.perf_counter()
        parts = model.losses(x, y)
        c = time.perf_counter()
        model.zero_grad(set_to_none=True)
        parts["total"].backward()
        d = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        e = time.perf_counter()
        lr = lr_at(step, steps, cfg.lr, "cosine", 0)
        for _, opt in opts:
            opt.step([p.grad for p in opt.params], lr)
        f = time.perf_counter()
        for k, v in zip(t, (b - a, c - b, d - c, e - d, f - e)):
            t[k] += v
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--variant", default="dense")
    ap.add_argument("--roads", action="store_true", help="also time `lm roads` at its defaults (about an hour)")
    a = ap.parse_args()
    base = LMTrainConfig(variant=a.variant, strength=1e-2 if a.variant in ("l1", "hybrid-joint") else 0.0,
                         device="cpu")
    cfg = base.model_copy(update={"tokens": a.steps * base.batch * base.context, "eval_tokens": base.context})
    data = split_bytes(cfg.corpus, "train")
    print(f"machine: {machine()}")
    print(f"config: {cfg.variant}, {cfg.layers} layers, d_model {cfg.d_model}, width {cfg.width}, context "
          f"{cfg.context}, batch {cfg.batch}, {cfg.steps} steps ({cfg.tokens} tokens)")
    plain_loop(cfg.model_copy(update={"tokens": 5 * cfg.batch * cfg.context}), data)  # warm-up
    plain_s = plain_loop(cfg, data)
    ours = train(cfg)
    plain = cfg.tokens / plain_s
    print(f"{'plain torch.optim.AdamW loop':>30}: {plain:9.0f} tokens/s")
    print(f"{'our trainer (lm.train)':>30}: {ours['tokens_per_s']:9.0f} tokens/s  {ours['tokens_per_s'] / plain:5.2f}x "
          f"the plain loop")
    t = breakdown(cfg, data, min(cfg.steps, 50))
    total = sum(t.values())
    print("where our step's time goes: " + ", ".join(f"{k} {v / total:.0%}" for k, v in t.items()))
    if a.roads:
        from monosemantic.experiments.lm import RoadsConfig, roads

        with tempfile.TemporaryDirectory() as d:
            start = time.perf_counter()
            res = roads(RoadsConfig(workers=2), Path(d) / "roads")
            print(f"lm roads at its defaults: {time.perf_counter() - start:.0f}s wall on 2 workers, "
                  f"{res['wall_s'] / 60:.1f} CPU-minutes of compute, {len(res['points'])} runs")


if __name__ == "__main__":
    main()
