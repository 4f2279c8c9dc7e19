"""A small causal transformer on bytes (vocabulary 256), nanoGPT-style, with the MLP variants of roads 1 and 3.

    model = ByteLM(LMConfig(variant="l1", strength=1e-3))
    logits = model(idx)                       # idx: [batch, seq] int64 bytes -> [batch, seq, 256]
    parts = model.losses(idx, targets)        # {"ce", "penalty", "total"}: what training minimises

Variants of every block's MLP (the rest of the model is the same):

* `dense`        Linear(d, width) -> ReLU -> Linear(width, d).
* `l1`           dense, trained with `strength * mean_tokens sum_j h_j ||w_j||` added to the loss, summed over layers:
                 road 1's penalty (the toy models' mean over the batch of ||h||_1; h >= 0 after the ReLU), each
                 neuron weighted by the norm of its output weights w_j (column j of the down-projection). Unweighted,
                 the model escapes the penalty by shrinking h and growing w (the toys' tied weights cannot); weighted,
                 it is the L1 norm of what the neurons write into the residual stream, which rescaling leaves alone
                 (the SAEs' ReLU+L1 weights its penalty by decoder norms for the same reason).
* `moe-flop`     `experts` experts each as wide as the dense MLP, top-1 routing: the dense model's active flops with
                 E times the neurons.
* `moe-width`    `experts` experts of width / experts each, top-`top_k` routing: the dense model's neurons in all.
* `hybrid-joint` dense, trained with a TopK dictionary on each MLP's h (road 3's joint dictionary):
                 `strength * sum_layers mean ||h - sae(h)||^2 / mean ||h||^2`, the dictionaries' weights trained with
                 the model's. The term is a fraction of h's energy, so shrinking h does not lower it; it is taken
                 over `joint_rows` evenly spaced tokens of each batch (the whole batch would cost more than the
                 model).

The MLP is ReLU, not GELU: a ReLU neuron is exactly zero when off, so the L1 penalty can switch neurons off, dead
neurons are well defined and the neuron basis is privileged (the toy models' setting).

MoE routing is Switch-style: a linear router, softmax, the top-k experts, each chosen expert's output scaled by its
probability (renormalised over the chosen k), and a load-balancing term `balance * E * sum_e f_e P_e` (f_e the share
of routed slots, P_e the mean probability). Tokens are dispatched to their experts (index_select per expert), so an
expert computes only its own tokens.

Sites (`named_sites()`, which `real.model.capture` and `replace` read): `resid.L`, the residual stream after block
L, and `mlp.L`, block L's MLP hidden activations after the ReLU ([batch, seq, neurons]; for MoE every expert's
neurons side by side, expert-major, zero in the experts a token was not routed to). A replaced `mlp.L` is what the
down-projection reads.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, PositiveInt, model_validator
from torch import nn

from monosemantic.config import Strict
from monosemantic.errors import InputError
from monosemantic.runs import check_memory

VOCAB = 256
VARIANTS = ("dense", "l1", "moe-flop", "moe-width", "hybrid-joint")
Variant = Literal["dense", "l1", "moe-flop", "moe-width", "hybrid-joint"]
STRENGTH_VARIANTS = ("l1", "hybrid-joint")  # the variants that take a strength


class LMConfig(Strict):
    """The model: its size and its MLP variant."""

    variant: Variant = "dense"
    strength: NonNegativeFloat = 0.0  # l1: the penalty's coefficient; hybrid-joint: the dictionary term's weight
    layers: PositiveInt = 2
    d_model: PositiveInt = 128
    heads: PositiveInt = 4
    width: PositiveInt = 512  # the dense MLP's neurons (moe-flop: per expert; moe-width: in all)
    experts: PositiveInt = 4
    top_k: PositiveInt = 2  # moe-width's routing (moe-flop routes top-1)
    balance: NonNegativeFloat = 0.01  # MoE load-balancing weight
    joint_latents: PositiveInt = 1024  # hybrid-joint: latents of each layer's dictionary
    joint_k: PositiveInt = 16  # hybrid-joint: active latents
    joint_rows: PositiveInt = 256  # hybrid-joint: tokens per batch the dictionary term is computed on
    positions: PositiveInt = 64  # the positional table: the longest context the model reads

    @model_validator(mode="after")
    def _check(self) -> LMConfig:
        if self.d_model % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide d_model ({self.d_model})")
        if self.strength and self.variant not in STRENGTH_VARIANTS:
            raise ValueError(f"strength applies to {' and '.join(STRENGTH_VARIANTS)}, not {self.variant} (give 0)")
        if self.variant == "moe-width":
            if self.width % self.experts:
                raise ValueError(f"moe-width: experts ({self.experts}) must divide the width ({self.width})")
            if self.top_k > self.experts:
                raise ValueError(f"moe-width: top_k ({self.top_k}) must be at most experts ({self.experts})")
        if self.variant == "hybrid-joint" and not self.joint_k < self.joint_latents:
            raise ValueError(f"hybrid-joint: joint_k ({self.joint_k}) must be below joint_latents "
                             f"({self.joint_latents})")
        self.check_memory()
        return self

    def check_memory(self, activations: int = 0) -> None:
        """Refuse, before allocating, a model whose weights with gradients and AdamW moments (float32), plus
        `activations` bytes, cannot fit."""
        d = self.d_model
        per_block = 4 * d * d + 2 * d * self.neurons + (d * self.experts if self.moe else 0) + (
            2 * self.width * self.joint_latents if self.variant == "hybrid-joint" else 0)
        params = (VOCAB + self.positions) * d + self.layers * per_block
        check_memory(16 * params + activations, f"a {self.layers}-layer LM (d_model {d}, {self.neurons} MLP neurons "
                     f"per layer)", "lower --d-model, --width, --experts, --layers or --positions")

    @property
    def moe(self) -> bool:
        return self.variant.startswith("moe")

    @property
    def expert_width(self) -> int:
        return self.width // self.experts if self.variant == "moe-width" else self.width

    @property
    def route_k(self) -> int:
        return self.top_k if self.variant == "moe-width" else 1

    @property
    def neurons(self) -> int:
        """MLP neurons per layer (the width of site mlp.L)."""
        return self.experts * self.expert_width if self.moe else self.width


class SelfAttention(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))  # [B, heads, T, hd]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """dense, l1 and hybrid-joint: fc -> ReLU -> hook (site mlp.L) -> proj."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.width)
        self.hook = nn.Identity()
        self.proj = nn.Linear(cfg.width, cfg.d_model)
        self.h: torch.Tensor | None = None  # the last forward's h (before the hook): the penalties read it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.h = self.fc(x).relu()
        return self.proj(self.hook(self.h))


class MoE(nn.Module):
    """moe-flop and moe-width: a router and `experts` ReLU MLPs of `expert_width` neurons each."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        E, m, d = cfg.experts, cfg.expert_width, cfg.d_model
        self.E, self.m, self.k, self.balance = E, m, cfg.route_k, cfg.balance
        self.router = nn.Linear(d, E, bias=False)
        self.w_in = nn.Parameter(torch.empty(E, d, m))   # [E, d, m]
        self.b_in = nn.Parameter(torch.zeros(E, m))      # [E, m]
        self.w_out = nn.Parameter(torch.empty(E, m, d))  # [E, m, d]
        self.b_out = nn.Parameter(torch.zeros(d))
        self.hook = nn.Identity()
        self.h: torch.Tensor | None = None
        self.aux: torch.Tensor | None = None  # the load-balancing term of the last forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        xf = x.reshape(-1, d)  # [N, d]
        probs = self.router(xf).softmax(-1)  # [N, E]
        top_p, top_e = probs.topk(self.k, dim=-1)  # [N, k]
        gate = top_p / top_p.sum(-1, keepdim=True)  # [N, k]
        routed = [(top_e == e).any(-1).nonzero().squeeze(1) for e in range(self.E)]  # token indices per expert
        f = torch.bincount(top_e.flatten(), minlength=self.E).to(probs.dtype) / top_e.numel()  # [E]
        self.aux = self.balance * self.E * (f * probs.mean(0)).sum()
        parts = []
        for e, idx in enumerate(routed):  # h of every expert, zero for the tokens it does not see: [N, m] each
            h_e = torch.addmm(self.b_in[e], xf.index_select(0, idx), self.w_in[e]).relu()
            parts.append(xf.new_zeros(len(xf), self.m).index_copy(0, idx, h_e))
        self.h = torch.cat(parts, 1)  # [N, E * m]
        h = self.hook(self.h.view(B, T, -1)).reshape(len(xf), -1)
        out = xf.new_zeros(len(xf), d)
        for e, idx in enumerate(routed):
            g = (gate * (top_e == e)).sum(-1).index_select(0, idx)[:, None]  # [n_e, 1]
            y = h[idx, e * self.m:(e + 1) * self.m] @ self.w_out[e]
            out = out.index_add(0, idx, g * y)
        return (out + self.b_out).view(B, T, d)


class JointSAE(nn.Module):
    """hybrid-joint: a TopK dictionary on one layer's h, trained with the model (unit decoder rows in the forward)."""

    def __init__(self, width: int, latents: int, k: int):
        super().__init__()
        self.k = k
        self.W_enc = nn.Parameter(torch.empty(width, latents))  # [width, latents]
        self.b_enc = nn.Parameter(torch.zeros(latents))
        self.W_dec = nn.Parameter(torch.empty(latents, width))  # [latents, width]
        self.b_dec = nn.Parameter(torch.zeros(width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pre = (h - self.b_dec) @ self.W_enc + self.b_enc  # [..., latents]
        vals, idx = pre.topk(self.k, dim=-1)
        codes = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
        return codes @ (self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)) + self.b_dec


class Block(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.mlp = MoE(cfg) if cfg.moe else MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ByteLM(nn.Module):
    """The language model: byte and position embeddings, `layers` blocks, a final LayerNorm, the tied unembedding."""

    def __init__(self, cfg: LMConfig, seed: int = 0):
        super().__init__()
        cfg.check_memory()  # a config copied with new sizes skipped its validator
        self.cfg = cfg
        self.tok = nn.Embedding(VOCAB, cfg.d_model)
        self.pos = nn.Embedding(cfg.positions, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.saes = nn.ModuleList(JointSAE(cfg.width, cfg.joint_latents, cfg.joint_k) for _ in range(cfg.layers)
                                  ) if cfg.variant == "hybrid-joint" else None
        self._init(seed)

    @torch.no_grad()
    def _init(self, seed: int) -> None:
        """nanoGPT's initialisation, drawn on the CPU from `seed` alone (the same model on every device)."""
        g = torch.Generator().manual_seed(seed)
        resid_std = 0.02 / math.sqrt(2 * self.cfg.layers)  # the projections into the residual stream
        for name, p in self.named_parameters():
            if name.endswith(("bias", "b_in", "b_out")):
                p.zero_()
            if p.ndim < 2 or name.startswith("saes.") or name.endswith("b_in"):
                continue  # LayerNorm weights stay 1
            std = resid_std if name.endswith(("proj.weight", "w_out")) else 0.02
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for sae in self.saes or []:
            W = torch.randn(sae.W_dec.shape, generator=g)
            sae.W_dec.copy_(W / W.norm(dim=1, keepdim=True))
            sae.W_enc.copy_(sae.W_dec.T)

    def named_sites(self) -> dict[str, tuple[nn.Module, str]]:
        sites = {}
        for i, block in enumerate(self.blocks):
            sites[f"resid.{i}"] = (block, "output")
            sites[f"mlp.{i}"] = (block.mlp.hook, "output")
        return sites

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits [batch, seq, 256] of the next byte at every position of idx: [batch, seq]."""
        T = idx.shape[1]
        if T > self.cfg.positions:
            raise InputError(f"context {T} is longer than the model's positional table ({self.cfg.positions})")
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tok.weight.T

    def losses(self, idx: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"ce" (nats per token), "penalty" (the variant's term, 0 for dense), "total"} of one batch."""
        logits = self(idx)
        ce = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        penalty = ce.new_zeros(())
        cfg = self.cfg
        for i, block in enumerate(self.blocks):
            h = block.mlp.h  # [B, T, width] or [N, neurons]
            if cfg.variant == "l1" and cfg.strength:
                penalty = penalty + cfg.strength * (h @ block.mlp.proj.weight.norm(dim=0)).mean()
            elif cfg.variant == "hybrid-joint" and cfg.strength:
                rows = h.reshape(-1, h.shape[-1])
                h = rows[::max(1, len(rows) // cfg.joint_rows)]  # evenly spaced tokens: the term costs little
                err = (h - self.saes[i](h)).pow(2).sum(-1).mean()
                penalty = penalty + cfg.strength * err / h.pow(2).sum(-1).mean().clamp_min(1e-8)
            elif cfg.moe:
                penalty = penalty + block.mlp.aux
        return {"ce": ce, "penalty": penalty, "total": ce + penalty}


def build(cfg: LMConfig | dict, seed: int = 0) -> ByteLM:
    """A fresh model from a config (validated: an InputError names the bad field)."""
    from monosemantic.config import validate

    return ByteLM(cfg if isinstance(cfg, LMConfig) else validate(LMConfig, cfg), seed)
