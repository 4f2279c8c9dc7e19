"""BatchTopK: the batch keeps its k * batch largest pre-activations, so a sample may use more or fewer than k.

At inference there is no batch: a threshold, the running mean of the smallest kept activation, replaces it
(saved as SAELens saves a BatchTopK: a jumprelu with a per-latent "threshold" weight).
"""
from __future__ import annotations

import torch

from monosemantic.dictionary.archs.base import Arch, above, relu_kept
from monosemantic.dictionary.archs.topk import TopK


class BatchTopK(TopK):
    name = "batchtopk"
    saelens = "jumprelu"  # SAELens has no batchtopk at inference
    threshold_weight = True
    saelens_rescale = False

    def init_state(self, state):
        state["threshold"] = torch.tensor(0.0)

    def threshold(self, p, state):
        return state["threshold"]

    def select(self, pre, p, state, training):
        if not training:
            return above(pre, state["threshold"])
        B, n = pre.shape
        vals, flat = pre.reshape(-1).topk(min(self.k * B, B * n), sorted=False)
        return relu_kept(flat // n, flat % n, vals, training)

    def solver(self, codes):  # k is a batch average, not a cap per sample: OMP at the encoder's mean L0
        return Arch.solver(self, codes)

    def cfg(self):
        return {"k": self.k}  # read back by our loader; SAELens's jumprelu ignores it

    def load_threshold(self, t, p, state):
        state["threshold"] = t.float()

    def step(self, x, p, state, aux_k, aux_coef):
        xc = x - p["b_dec"]
        pre = torch.addmm(p["b_enc"], xc, p["W_enc_T"].T)  # [B, n]
        rows, lat, vals = self.select(pre, p, state, training=True)
        if len(vals):
            state["threshold"] = 0.99 * state.get("threshold", vals.min()) + 0.01 * vals.min()
        return self.sparse_step(x, xc, pre, p, rows, lat, vals, state, aux_k, aux_coef, relu_after=True)
