"""TopK: each sample keeps its k largest pre-activations (ReLU'd); decoder rows unit norm.

Dead latents also train on the residual through OpenAI's AuxK loss, and a resampled latent restarts with a zero
encoder bias: it competes through the top-k selection, not through a threshold.
"""
from __future__ import annotations

import torch

from monosemantic.errors import InputError
from monosemantic.dictionary.archs.base import Arch, relu_kept


class TopK(Arch):
    name = "topk"
    saelens = "topk"
    saelens_rescale = True

    def check(self, n_latents):
        if not 0 < self.k < n_latents:
            raise InputError(f"k must lie in [1, latents={n_latents}), got {self.k}")

    def select(self, pre, p, state, training):
        B = pre.shape[0]
        vals, lat = pre.topk(self.k, dim=1, sorted=False)  # [B, k]
        rows = torch.arange(B, device=pre.device).repeat_interleave(self.k)
        return relu_kept(rows, lat.reshape(-1), vals.reshape(-1), training)

    def solver(self, codes):
        # the objective is the squared error over codes with at most k atoms: OMP with k atoms (greedy, signed)
        return "omp", dict(k=self.k, tol=1e-9), 0.0

    def cfg(self):
        return {"k": self.k, "rescale_acts_by_decoder_norm": False}

    def step(self, x, p, state, aux_k, aux_coef):
        xc = x - p["b_dec"]
        pre = torch.addmm(p["b_enc"], xc, p["W_enc_T"].T)  # [B, n]
        rows, lat, vals = self.select(pre, p, state, training=True)
        return self.sparse_step(x, xc, pre, p, rows, lat, vals, state, aux_k, aux_coef, relu_after=True)

    def restart_bias(self, p, dead, x, rate):
        p["b_enc"][dead] = 0.0
