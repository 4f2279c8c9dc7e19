"""Sparse autoencoders with hand-written gradients: ReLU + L1, TopK, BatchTopK, JumpReLU.

    pre = (x - b_dec) @ W_enc + b_enc          W_enc: [d_in, d_sae] (stored transposed, [d_sae, d_in])
    f   = activation(pre)                      sparse codes [batch, d_sae]
    x^  = f @ W_dec + b_dec                    W_dec: [d_sae, d_in]
    loss = mean_batch ||x - x^||^2 + penalty   (squared error summed over dims, as SAELens)

* relu:      f = ReLU(pre), penalty l1 * sum_i f_i ||W_dec_i|| (decoder rows free; the weighting keeps the
             L1 from being dodged by shrinking codes and growing rows).
* topk:      the k largest pre-activations (ReLU'd); decoder rows unit norm.
* batchtopk: the batch's k * batch largest, so samples may use more or fewer than k; at inference a
             threshold (the running mean of the smallest kept activation) replaces the batch.
* jumprelu:  f = pre * [pre > theta_i], penalty l0 * #active, theta learned through the straight-through
             estimator of Rajamanoharan et al. (2024) with a rectangle kernel of width `bandwidth`.

TopK and BatchTopK codes are handled as (row, latent, value) triples: decoding gathers k decoder rows
per sample and the backward pass scatters into only the rows that fired, so of the four big matmuls of
a dense SAE step only the encoder's forward one remains.

Training, in the order it helps recovery on ground-truth data (measured in benchmarks/dictionary.py):
decoder bias at the geometric median of a data sample; encoder initialised as the decoder's transpose;
Adam with a short warm-up and cosine decay to zero; latents that stop firing are resampled towards the
worst-reconstructed samples of the batch (with their Adam moments reset), and for TopK/BatchTopK an
auxiliary loss (OpenAI's AuxK) also trains dead latents on the residual.
"""
from __future__ import annotations

import math

import torch

ARCHS = ("relu", "topk", "batchtopk", "jumprelu")
SPARSE_MAX = 0.05  # a ReLU batch with at most this share of active codes takes the sparse path
_EPS = 1e-8


def geometric_median(X: torch.Tensor, iters: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances to the rows of X: [d]."""
    X = X.double()
    y = X.mean(0)
    for _ in range(iters):
        w = 1 / (X - y).norm(dim=1).clamp_min(1e-9)
        y_new = (w[:, None] * X).sum(0) / w.sum()
        if (y_new - y).norm() <= tol * y.norm().clamp_min(1e-9):
            y = y_new
            break
        y = y_new
    return y.float()


def init_params(d_in: int, d_sae: int, arch: str, b_dec: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Unit random decoder rows, encoder = decoder transpose, zero encoder bias, b_dec given."""
    W_dec = torch.randn(d_sae, d_in, generator=gen)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    p = {"W_enc_T": W_dec.clone(), "b_enc": torch.zeros(d_sae), "W_dec": W_dec, "b_dec": b_dec.clone().float()}
    if arch == "jumprelu":
        p["log_theta"] = torch.zeros(d_sae)  # thresholds exp(log_theta), set from data by the caller
    return p


def select(pre: torch.Tensor, arch: str, k: int, threshold: torch.Tensor | None, training: bool):
    """The active codes of pre-activations pre: [B, d_sae] as (rows, latents, values), all [nnz]."""
    B, n = pre.shape
    if arch == "topk":
        vals, lat = pre.topk(k, dim=1, sorted=False)  # [B, k]
        rows = torch.arange(B).repeat_interleave(k)
        vals, lat = vals.reshape(-1), lat.reshape(-1)
    elif arch == "batchtopk" and training:
        vals, flat = pre.reshape(-1).topk(min(k * B, B * n), sorted=False)
        rows, lat = flat // n, flat % n
    else:  # relu, jumprelu, batchtopk at inference: a per-latent threshold
        t = 0.0 if threshold is None else threshold
        rows, lat = (pre > t).nonzero(as_tuple=True)
        return rows, lat, pre[rows, lat]
    if training:  # keep the shape (boolean indexing costs more than the zeros); callers mask by vals > 0
        return rows, lat, vals.clamp_min(0)
    keep = vals > 0
    return rows[keep], lat[keep], vals[keep]


def decode(rows, atoms, vals, B: int, b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """x^ = f @ W_dec (+ b_dec) from sparse codes (rows, values) whose decoder rows `atoms` ([nnz, d_in]) the
    caller has gathered (it needs them again for the gradients): [B, d_in]."""
    x_hat = b_dec.expand(B, -1).clone() if b_dec is not None else atoms.new_zeros(B, atoms.shape[1])
    return x_hat.index_add_(0, rows, atoms * vals[:, None])


def encode_pre(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Pre-activations (x - b_dec) @ W_enc + b_enc: [B, d_sae]."""
    return torch.addmm(p["b_enc"], x - p["b_dec"], p["W_enc_T"].T)


def inference_threshold(arch: str, p: dict[str, torch.Tensor], state: dict) -> torch.Tensor | None:
    if arch == "jumprelu":
        return p["log_theta"].exp()
    if arch == "batchtopk":
        return state["threshold"]
    return None


def step_grads(x: torch.Tensor, p: dict[str, torch.Tensor], arch: str, k: int, penalty: float,
               bandwidth: float, state: dict, aux_k: int, aux_coef: float) -> tuple[dict[str, torch.Tensor], dict]:
    """Loss and gradients of one batch x: [B, d_in] (hand-written; checked against autograd in the tests).

    Returns (grads keyed like p, info) where info has the loss terms, the batch's firing counts per latent
    ([d_sae]) and the per-sample squared error ([B]) used for resampling.
    """
    B, d = x.shape
    n = p["W_dec"].shape[0]
    xc = x - p["b_dec"]
    pre = torch.addmm(p["b_enc"], xc, p["W_enc_T"].T)  # [B, n]
    g: dict[str, torch.Tensor] = {}
    info: dict = {}
    mask = None
    if arch == "relu":
        mask = pre > 0
        sparse = float(mask.sum()) <= SPARSE_MAX * B * n
    else:
        sparse = arch in ("topk", "batchtopk")
    if sparse:
        if mask is not None:
            rows, lat = mask.nonzero(as_tuple=True)
            vals = pre[rows, lat]
        else:
            rows, lat, vals = select(pre, arch, k, None, training=True)
        if arch == "batchtopk" and len(vals):  # running threshold for inference
            state["threshold"] = 0.99 * state.get("threshold", vals.min()) + 0.01 * vals.min()
        # index_select, not fancy indexing: ~10x faster for whole rows on CPU
        Wd = p["W_dec"].index_select(0, lat)  # [nnz, d]
        x_hat = decode(rows, Wd, vals, B, p["b_dec"])
        err = x_hat - x  # [B, d]
        ge = err * (2 / B)
        ge_r = ge.index_select(0, rows)  # [nnz, d]
        dvals = (Wd * ge_r).sum(1)  # [nnz]
        active = vals > 0
        if mask is None:
            dvals *= active  # the ReLU after the top-k selection
        g["W_dec"] = torch.zeros_like(p["W_dec"]).index_add_(0, lat, ge_r * vals[:, None])
        if arch == "relu":
            norms = p["W_dec"].norm(dim=1)  # [n]
            dvals += (penalty / B) * norms.index_select(0, lat)
            fsum = torch.zeros(n).index_add_(0, lat, vals)
            g["W_dec"] += ((penalty / B) * fsum / norms.clamp_min(_EPS))[:, None] * p["W_dec"]
            info["penalty"] = float(penalty * (fsum * norms).sum() / B)
        g["W_enc_T"] = torch.zeros_like(p["W_enc_T"]).index_add_(0, lat, xc.index_select(0, rows) * dvals[:, None])
        g["b_enc"] = torch.zeros(n).index_add_(0, lat, dvals)
        fired = torch.bincount(lat, weights=active.float(), minlength=n).long()
        info["l0"] = float(active.sum()) / B
        if aux_coef > 0 and "dead" in state and state["dead"].any():
            _aux_grads(pre, xc, err, p, g, state["dead"], aux_k, aux_coef, info)
    else:
        if arch == "relu":
            f = pre * mask  # [B, n]
        else:
            theta = p["log_theta"].exp()
            mask = pre > theta
            f = pre * mask
        x_hat = torch.addmm(p["b_dec"], f, p["W_dec"])
        err = x_hat - x
        ge = err * (2 / B)
        df = ge @ p["W_dec"].T  # [B, n]
        g["W_dec"] = f.T @ ge
        if arch == "relu":
            norms = p["W_dec"].norm(dim=1)  # [n]
            df += (penalty / B) * norms
            fsum = f.sum(0)
            g["W_dec"] += ((penalty / B) * fsum / norms.clamp_min(_EPS))[:, None] * p["W_dec"]
            info["penalty"] = float(penalty * (fsum * norms).sum() / B)
        else:
            # straight-through estimator: d f / d theta = -theta/eps K, d [pre > theta] / d theta = -1/eps K
            kern = ((pre - theta).abs() < bandwidth / 2).float() / bandwidth  # [B, n]
            dtheta = (-(df * theta + penalty / B) * kern).sum(0)  # df already carries the 1/B
            g["log_theta"] = dtheta * theta  # theta = exp(log_theta)
            info["penalty"] = float(penalty * mask.sum() / B)
        gpre = df * mask
        g["W_enc_T"] = gpre.T @ xc
        g["b_enc"] = gpre.sum(0)
        fired = mask.sum(0)
        info["l0"] = float(mask.sum() / B)
    g["b_dec"] = ge.sum(0) - g["b_enc"] @ p["W_enc_T"]
    se = (err ** 2).sum(1)  # [B]
    info["mse"] = float(se.mean())
    info["fired"] = fired
    info["se"] = se
    info["err"] = err
    return g, info


def _aux_grads(pre, xc, err, p, g, dead, aux_k, aux_coef, info) -> None:
    """OpenAI's AuxK: the top aux_k dead latents reconstruct the residual x - x^ (no bias); adds to g."""
    B = pre.shape[0]
    n_dead = int(dead.sum())
    kk = min(aux_k, n_dead)
    pre_dead = pre.masked_fill(~dead, -math.inf)
    vals, lat = pre_dead.topk(kk, dim=1, sorted=False)  # [B, kk]
    rows = torch.arange(B).repeat_interleave(kk)
    vals, lat = vals.reshape(-1), lat.reshape(-1)
    keep = vals > 0
    rows, lat, vals = rows[keep], lat[keep], vals[keep]
    if not len(vals):
        return
    target = -err  # the residual x - x^, a constant for this loss
    Wd = p["W_dec"].index_select(0, lat)
    r_hat = decode(rows, Wd, vals, B)
    e2 = r_hat - target
    ge_r = (e2 * (2 * aux_coef / B)).index_select(0, rows)
    dvals = (Wd * ge_r).sum(1)
    g["W_dec"].index_add_(0, lat, ge_r * vals[:, None])
    g["W_enc_T"].index_add_(0, lat, xc.index_select(0, rows) * dvals[:, None])
    g["b_enc"].index_add_(0, lat, dvals)
    info["aux"] = float(aux_coef * (e2 ** 2).sum() / B)
