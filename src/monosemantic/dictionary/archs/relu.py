"""ReLU + L1: f = ReLU(pre), penalty l1 * sum_i f_i ||W_dec_i||.

The decoder rows are free; weighting the L1 by their norms keeps it from being dodged by shrinking codes and
growing rows. A batch where few codes fire takes the sparse path, one where many do the dense matmuls.
"""
from __future__ import annotations

import torch

from monosemantic.dictionary.archs.base import EPS, Arch, above

DEFAULT_L1 = 0.1  # chosen on the section-5 data (512 features, d 128)
SPARSE_MAX = 0.05  # a batch with at most this share of active codes takes the sparse path


class ReLU(Arch):
    name = "relu"
    saelens = "standard"
    unit_decoder = False

    def __init__(self, k: int = 5, l1: float | None = None, l0: float = 0.01, bandwidth: float = 0.05):
        super().__init__(k, l1, l0, bandwidth)
        self.penalty = DEFAULT_L1 if l1 is None else l1

    def init_from_data(self, p, pre, init_rate):
        if init_rate < 1:
            # start sparse: each latent fires on init_rate of the samples, not half of them
            p["b_enc"] = -pre.quantile(1 - init_rate, dim=0).clamp_min(0)

    def select(self, pre, p, state, training):
        return above(pre, 0.0)

    def solver(self, codes):
        # ||x - b_dec - sum_i c_i D_i||^2 + l1 sum_i c_i ||D_i|| over c >= 0 is, halved, the lasso on the unit
        # decoder rows with alpha = l1 / 2: its optimum is computed, not approximated
        alpha = self.penalty / 2
        return "l1", dict(alpha=alpha, positive=True), alpha

    def step(self, x, p, state, aux_k, aux_coef):
        B = x.shape[0]
        n = p["W_dec"].shape[0]
        xc = x - p["b_dec"]
        pre = torch.addmm(p["b_enc"], xc, p["W_enc_T"].T)  # [B, n]
        mask = pre > 0
        if float(mask.sum()) <= SPARSE_MAX * B * n:
            rows, lat = mask.nonzero(as_tuple=True)
            # no AuxK: a dead ReLU latent is revived by resampling its bias, not by a top-k over the dead
            return self.sparse_step(x, xc, pre, p, rows, lat, pre[rows, lat], state, aux_k, 0.0, relu_after=False)
        return self.dense_step(x, xc, pre, p, mask, 0.0)

    def sparse_penalty(self, p, g, lat, vals, dvals, B, info):
        n = p["W_dec"].shape[0]
        norms = p["W_dec"].norm(dim=1)  # [n]
        dvals += (self.penalty / B) * norms.index_select(0, lat)
        fsum = torch.zeros(n).index_add_(0, lat, vals)
        self._row_norm_grad(p, g, fsum, norms, B, info)

    def dense_penalty(self, pre, theta, p, f, mask, df, g, B, info):
        norms = p["W_dec"].norm(dim=1)  # [n]
        df += (self.penalty / B) * norms
        self._row_norm_grad(p, g, f.sum(0), norms, B, info)

    def _row_norm_grad(self, p, g, fsum, norms, B, info):
        """The L1's gradient through the decoder row norms; fsum: [n] the batch's code sums per latent."""
        g["W_dec"] += ((self.penalty / B) * fsum / norms.clamp_min(EPS))[:, None] * p["W_dec"]
        info["penalty"] = float(self.penalty * (fsum * norms).sum() / B)
