"""An SAE as a `torch.nn.Module`, to hook into any model or train by autograd.

    module = sae.module()                  # from a fitted or loaded SparseAutoencoder
    f = module.encode(x)                   # codes [..., d_sae], dense (zeros where no latent fires)
    x_hat = module.decode(f)               # [..., d_in]
    x_hat = module(x)                      # forward: the reconstruction, so it can replace x in a network

Parameters, in SAELens's names and layout: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]
(JumpReLU adds its threshold as log_theta [d_sae]). They are the estimator's own tensors, not copies: `sae.fit`,
`partial_fit` and the hand-written trainer move the module, and an optimiser on `module.parameters()` moves the
estimator, until `.to()` gives the module copies of its own. BatchTopK's inference threshold is a buffer
`threshold` (a copy taken by `module()`). Autograd reaches the latents that fire, not the thresholds (JumpReLU's
trains through the estimator's straight-through estimator).
"""
from __future__ import annotations

import torch
from torch import nn

from monosemantic.dictionary.archs.base import above


class SAEModule(nn.Module):
    def __init__(self, arch, params: dict[str, torch.Tensor], threshold: torch.Tensor | None = None):
        """params: the estimator's (W_enc_T, b_enc, W_dec, b_dec, maybe log_theta); threshold: BatchTopK's."""
        super().__init__()
        self.arch = arch
        # nn.Parameter(t) shares t's storage: these are the estimator's tensors (W_enc a transposed view)
        self.W_enc = nn.Parameter(params["W_enc_T"].T)
        for name in ("b_enc", "W_dec", "b_dec", "log_theta"):
            if name in params:
                self.register_parameter(name, nn.Parameter(params[name]))
        if threshold is not None and "log_theta" not in params:
            self.register_buffer("threshold", threshold.detach().expand(self.b_enc.shape[0]).clone())
        else:
            self.threshold = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes [..., d_sae] of x: [..., d_in], the estimator's inference (top-k, ReLU, or the threshold)."""
        x2 = x.reshape(-1, x.shape[-1])
        pre = torch.addmm(self.b_enc, x2 - self.b_dec, self.W_enc)  # [B, d_sae]
        if self.threshold is not None:
            rows, lat, vals = above(pre, self.threshold)
        else:
            rows, lat, vals = self.arch.select(pre, {"log_theta": getattr(self, "log_theta", None)}, {}, training=False)
        f = pre.new_zeros(pre.shape).index_put((rows, lat), vals)
        return f.reshape(*x.shape[:-1], -1)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x^ = f W_dec + b_dec: [..., d_in] for codes f: [..., d_sae]."""
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
