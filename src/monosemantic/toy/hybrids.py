"""Hybrid training changes for the tied toy models: a change to training that may make superposition easier to
undo afterwards, each with its own strength per instance (a strength sweep is one batched model).

    l1         strength * mean_b ||h||_1                      (road 1's penalty, far below what removes superposition)
    coherence  strength * mean over pairs of represented features of relu(|cos(W_i, W_j)| - welch(n, m))^2
               (pushes the represented directions apart, toward an equiangular frame)
    noise      h + strength * N(0, 1) in training (the evaluation loss stays noise-free)
    joint      strength * mean_b ||h - sae(h)||^2 of a TopK sparse autoencoder on h trained with the model

`Hybrid.loss_grad` takes the place of the model's hand-written gradient for the step and computes it by autograd
on `model.forward`'s pieces: the coherence term and the joint SAE's TopK would need gradients of their own, and
correctness comes first. At strength 0 every change gives the plain model's gradient (the tests check it).
"""
from __future__ import annotations

import torch

from monosemantic.bounds import welch_bound
from monosemantic.errors import InputError
from monosemantic.measures import REPRESENTED

CHANGES = ("l1", "coherence", "noise", "joint")


def check_change(change: str, strength, instances: int) -> torch.Tensor:
    """strength as a float tensor [instances] (finite, >= 0), or an InputError naming the problem."""
    if change not in CHANGES:
        raise InputError(f"unknown change {change!r}; choose from {', '.join(CHANGES)}")
    s = torch.as_tensor(strength, dtype=torch.float32)
    if s.ndim > 1 or (s.ndim == 1 and len(s) != instances):
        raise InputError(f"{change} strength must be a number or one per instance ({instances}), got {list(s.shape)}")
    if not torch.isfinite(s).all() or (s < 0).any():
        raise InputError(f"{change} strengths must be finite and >= 0, got {s.tolist()}")
    return s.expand(instances).clone() if s.ndim == 0 else s


class Hybrid:
    """One change to training of a tied toy `model`, strength: [instances]. joint: a TopK SAE of `latents` (>= m)
    latents and `k` active per sample on each instance's h, its weights trained with the model's."""

    def __init__(self, model, change: str, strength, latents: int | None = None, k: int = 3, seed: int = 0):
        if getattr(model, "kind", None) not in ("linear", "relu-output", "relu-hidden"):
            raise InputError("hybrid changes apply to the tied toy models (linear, relu-output, relu-hidden)")
        I, m, n = model.instances, model.m, model.n
        self.change, self.model = change, model
        dev = model.theta.device
        self.strength = check_change(change, strength, I).to(dev)
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        self.terms: list[torch.Tensor] = []  # the change's term per step: [instances] each (before the strength)
        self._params: list[torch.Tensor] = []
        self.welch = welch_bound(n, m)
        if change == "joint":
            latents = n if latents is None else latents
            if latents < m:
                raise InputError(f"the joint dictionary needs at least the model's width m={m} latents, got {latents}")
            if not 1 <= k < latents:
                raise InputError(f"the joint dictionary's k must lie in [1, {latents}), got {k}")
            self.k = k
            g = torch.Generator().manual_seed(seed)
            dec = torch.randn(I, latents, m, generator=g)
            dec /= dec.norm(dim=2, keepdim=True)
            # W_dec: [I, latents, m] (rows unit-normed in the forward pass), W_enc: [I, m, latents] starts as its
            # transpose, b_enc: [I, latents], b_dec: [I, m]
            self._params = [t.to(dev) for t in (dec, dec.transpose(1, 2).contiguous(), torch.zeros(I, latents),
                                                 torch.zeros(I, m))]
            self._grads = [torch.zeros_like(p) for p in self._params]

    def params(self) -> list[torch.Tensor]:
        return self._params

    def grads(self) -> list[torch.Tensor]:
        return self._grads if self._params else []

    def sae(self, h: torch.Tensor, params: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The joint SAE's reconstruction of h: [I, B, m]."""
        W_dec, W_enc, b_enc, b_dec = params or self._params
        pre = torch.baddbmm(b_enc[:, None, :], h - b_dec[:, None, :], W_enc)  # [I, B, latents]
        vals, idx = pre.topk(self.k, dim=2)
        codes = torch.zeros_like(pre).scatter(2, idx, vals.relu())
        return torch.baddbmm(b_dec[:, None, :], codes, W_dec / W_dec.norm(dim=2, keepdim=True).clamp_min(1e-8))

    def loss_grad(self, x: torch.Tensor, weight: torch.Tensor, l1: torch.Tensor | None = None) -> None:
        """Write the gradient of (reconstruction + l1 penalty + strength * term) into model.grad (and the SAE's)."""
        model, m = self.model, self.model.m
        with torch.enable_grad():
            theta = model.theta.detach().requires_grad_(True)
            params = [p.detach().requires_grad_(True) for p in self._params]
            W, b = theta[:, :m], theta[:, m]  # [I, m, n], [I, n]
            h = torch.bmm(x, W.transpose(1, 2))  # [I, B, m]
            if model.hidden_relu:
                h = h.relu()
            h_out = h
            if self.change == "noise":
                h_out = h + self.strength[:, None, None] * torch.randn(h.shape, generator=self.gen, device=h.device)
            out = torch.baddbmm(b[:, None, :], h_out, W)
            if model.output_relu:
                out = out.relu()
            loss = (weight * (out - x) ** 2).sum(2).mean(1)  # [I]
            if l1 is not None:
                loss = loss + l1 * h.abs().sum(2).mean(1)
            term = self._term(h, W, params)
            if term is not None:
                loss = loss + self.strength * term
                self.terms.append(term.detach())
            loss.sum().backward()
        model.grad.copy_(theta.grad)
        for g, p in zip(self._grads if self._params else [], params):
            g.copy_(p.grad)

    def _term(self, h: torch.Tensor, W: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor | None:
        if self.change == "l1":
            return h.abs().sum(2).mean(1)
        if self.change == "coherence":
            return coherence_excess(W, self.welch)
        if self.change == "joint":
            return ((h - self.sae(h, params)) ** 2).sum(2).mean(1)
        return None  # noise acts on the forward pass itself

    def term_log(self) -> torch.Tensor:
        """[steps, instances]: the change's term at every step (empty for noise)."""
        return torch.stack(self.terms).cpu() if self.terms else torch.zeros(0, self.model.instances)


def _cosines(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos(W_i, W_j): [I, n, n] and the feature norms [I, n] of W: [I, m, n]."""
    norms = W.norm(dim=1)
    U = W / norms[:, None, :].clamp_min(1e-8)
    return torch.bmm(U.transpose(1, 2), U), norms


def coherence_excess(W: torch.Tensor, target: float) -> torch.Tensor:
    """[I]: mean over pairs of represented features (||W_i|| > REPRESENTED) of relu(|cos(W_i, W_j)| - target)^2.

    W: [I, m, n]. Features below the threshold are left alone, so the term does not score by pushing a represented
    feature to interfere less with one the model does not use."""
    cos, norms = _cosines(W)
    rep = (norms.detach() > REPRESENTED).to(W.dtype)
    mask = rep[:, :, None] * rep[:, None, :] * (1 - torch.eye(W.shape[2], device=W.device, dtype=W.dtype))
    excess = (cos.abs() - target).relu() ** 2 * mask
    return excess.sum((1, 2)) / mask.sum((1, 2)).clamp_min(1.0)


def max_cosine(W: torch.Tensor) -> list[float]:
    """Per instance, the largest |cos| between two represented features of W: [I, m, n] (0 with fewer than two)."""
    cos, norms = _cosines(W)
    cos, rep = cos.abs(), norms > REPRESENTED
    mask = rep[:, :, None] & rep[:, None, :] & ~torch.eye(W.shape[2], dtype=torch.bool, device=W.device)
    return [float(c[mk].max()) if mk.any() else 0.0 for c, mk in zip(cos, mask)]
