"""JumpReLU: f = pre * [pre > theta_i], penalty l0 * #active.

The thresholds theta = exp(log_theta) are learned through the straight-through estimator of Rajamanoharan et
al. (2024) with a rectangle kernel of width `bandwidth`; saved as SAELens's "threshold" weight.
"""
from __future__ import annotations

import math

import torch

from monosemantic.dictionary.archs.base import Arch, above


class JumpReLU(Arch):
    name = "jumprelu"
    saelens = "jumprelu"
    threshold_weight = True

    def __init__(self, k: int = 5, l1: float | None = None, l0: float = 0.01, bandwidth: float = 0.05):
        super().__init__(k, l1, l0, bandwidth)
        self.penalty = l0

    def init_params(self, d_in, d_sae, b_dec, gen):
        p = super().init_params(d_in, d_sae, b_dec, gen)
        p["log_theta"] = torch.zeros(d_sae)  # set from data by init_from_data
        return p

    def init_from_data(self, p, pre, init_rate):
        # start the thresholds where TopK would cut: the (1 - k/n) quantile of pre
        p["log_theta"].fill_(math.log(max(float(pre.quantile(1 - self.k / pre.shape[1])), 1e-6)))

    def threshold(self, p, state):
        return p["log_theta"].exp()

    def select(self, pre, p, state, training):
        return above(pre, p["log_theta"].exp())

    def load_threshold(self, t, p, state):
        p["log_theta"] = t.float().clamp_min(1e-12).log()

    def step(self, x, p, state, aux_k, aux_coef):
        xc = x - p["b_dec"]
        pre = torch.addmm(p["b_enc"], xc, p["W_enc_T"].T)  # [B, n]
        theta = p["log_theta"].exp()
        return self.dense_step(x, xc, pre, p, pre > theta, theta)

    def dense_penalty(self, pre, theta, p, f, mask, df, g, B, info):
        # straight-through estimator: d f / d theta = -theta/eps K, d [pre > theta] / d theta = -1/eps K
        kern = ((pre - theta).abs() < self.bandwidth / 2).float() / self.bandwidth  # [B, n]
        dtheta = (-(df * theta + self.penalty / B) * kern).sum(0)  # df already carries the 1/B
        g["log_theta"] = dtheta * theta  # theta = exp(log_theta)
        info["penalty"] = float(self.penalty * mask.sum() / B)
