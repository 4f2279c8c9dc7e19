"""Mixture-of-Experts toy models: E experts of m ReLU neurons, a learned router picks k per input.

    logits = R x                                   router R: [instances, E, n] (no bias: a lone
    top    = the k experts with the largest logits    feature's expert does not depend on its size)
    h_e    = ReLU(W_e x)                           expert e's neurons, W: [instances, E, m, n]
    x'     = ReLU(sum_{e in top} g_e W_e^T h_e + b)

Each expert is the relu-hidden toy model (tied weights, privileged neurons), so every measure of
`measures.py` applies to one expert's W_e: [m, n] or to all E*m neurons stacked (`W`).

The gate is a straight-through estimator: g = onehot(top) + p - stop_grad(p), p = softmax(logits).
Its value is 1 on the chosen experts and 0 elsewhere, so an expert's weights mean what a dense
model's weights mean (a feature is represented when its column has norm > 0.5) and k = E is exactly
the dense model of E*m neurons. Its gradient reaches every expert's logit with that expert's
marginal value for the input, <dL/dx', W_e^T h_e>: an expert that would have reconstructed the input
gains the input even when it was not chosen. Gates that pass a gradient only through the chosen
expert (Switch: g = p_e; or p_e / stop_grad(p_e)) give the router no signal that another expert
would do better, and in these toys its routing drifts and the loss climbs after a few thousand steps
(measured: 0.013 -> 0.05 at S = 0.97 over 10k steps). A Switch-style load-balancing term
(E * sum_e f_e P_e, f_e the share of inputs routed to e, P_e the mean router probability) keeps experts
from collapsing; inputs with no active feature carry no information for the router and are left out.

The toy computes every expert on every input and masks (at these sizes cheaper than a gather, and the
straight-through gradient needs every expert's output); the active flops of a real MoE are k*m
neurons per input, which is what the comparisons count. Gradients by autograd.
"""
from __future__ import annotations

import torch
from torch import nn

from monosemantic.errors import InputError
from monosemantic.toy.models import AutogradToyModel, _check_sizes, xavier_normal


class MoEToyModel(AutogradToyModel):
    kind = "moe"

    def __init__(self, instances: int, n: int, m: int, experts: int, k: int, seeds: list[int],
                 balance: float = 0.01, device: torch.device | str = "cpu"):
        _check_sizes(instances, n, m, seeds)
        if experts < 1:
            raise InputError(f"experts must be positive, got {experts}")
        if not 1 <= k <= experts:
            raise InputError(f"top-k must lie in [1, experts={experts}], got k={k}")
        if not balance >= 0:
            raise InputError(f"the load-balancing weight must be >= 0, got {balance}")
        super().__init__()
        self.instances, self.n, self.m, self.experts, self.k, self.balance = instances, n, m, experts, k, balance
        # expert e of instance i from seed (seed_i, e): the experts start apart, like E dense models
        W = torch.stack([xavier_normal(instances, m, n, [s * 131 + e for s in seeds]) for e in range(experts)], 1)
        self.W_experts = nn.Parameter(W.to(device))  # [instances, E, m, n]
        self.router = nn.Parameter((0.1 * xavier_normal(instances, experts, n, [s + 104_729 for s in seeds])).to(device))
        self.b_out = nn.Parameter(torch.zeros(instances, n, device=device))

    @property
    def W(self) -> torch.Tensor:  # every expert's neurons stacked: [instances, E * m, n]
        return self._flat().detach()

    def _named(self) -> dict[str, torch.Tensor]:
        """W: [instances, E, m, n], router: [instances, E, n], b: [instances, n]."""
        return {"W": self.W_experts, "router": self.router, "b": self.b_out}

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(gate, probs, chosen), each [instances, batch, E]: gate is 1 on the chosen experts (see above)."""
        probs = torch.bmm(x, self.router.transpose(1, 2)).softmax(dim=2)
        chosen = torch.zeros_like(probs).scatter_(2, probs.topk(self.k, dim=2).indices, 1.0)
        return chosen + probs - probs.detach(), probs, chosen

    def _flat(self) -> torch.Tensor:  # [instances, E * m, n], a view that autograd follows
        return self.W_experts.reshape(self.instances, self.experts * self.m, self.n)

    def _output(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x' [instances, batch, n], probs, chosen): two bmms over all E*m neurons, masked by the gate."""
        gate, probs, chosen = self.route(x)
        W = self._flat()
        h = torch.bmm(x, W.transpose(1, 2)).relu() * gate.repeat_interleave(self.m, dim=2)
        return torch.baddbmm(self.b_out[:, None, :], h, W).relu(), probs, chosen

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of all E*m neurons, zero in the experts not chosen: [instances, batch, E * m]."""
        with torch.no_grad():
            chosen = self.route(x)[2].repeat_interleave(self.m, dim=2)
            return torch.bmm(x, self.W.transpose(1, 2)).relu() * chosen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._output(x)[0]

    def _loss(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        out, probs, chosen = self._output(x)
        loss = ((out - self.target(x)) ** 2 * weight).sum(dim=2).mean(dim=1)  # [instances]
        if self.balance > 0:
            live = (x.sum(dim=2, keepdim=True) > 0).float()  # [instances, batch, 1]
            count = live.sum(dim=1).clamp_min(1)  # [instances, 1]
            f = (chosen * live).sum(dim=1) / (count * self.k)  # share of routed inputs per expert
            P = (probs * live).sum(dim=1) / count
            loss = loss + self.balance * self.experts * (f * P).sum(dim=1)
        return loss
