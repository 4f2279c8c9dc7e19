"""AdamW and learning-rate schedules, shared by every trainer (toy models, SAEs)."""
from __future__ import annotations

import math

import torch

SCHEDULES = ("constant", "cosine")


class AdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias correction), on a list of tensors.

    A few in-place ops per tensor with no per-step Python bookkeeping: at toy sizes the step of
    torch.optim costs more than the forward and backward passes together. The tests check that it
    follows torch.optim.AdamW to float precision.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads, lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            p.mul_(1 - lr * self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / bc2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / bc1)


def lr_at(step: int, steps: int, lr: float, schedule: str, warmup: int) -> float:
    """Learning rate for 0-based `step`: linear warm-up, then constant or cosine decay to 0."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * 0.5 * (1 + math.cos(math.pi * progress))
    return lr
