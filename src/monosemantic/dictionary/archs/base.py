"""What the SAE architectures share: the maths of encoder and decoder, the hand-written gradient step, AuxK,
and `Arch`, the base class whose subclasses (one module each) hold what differs.

    pre = (x - b_dec) @ W_enc + b_enc          W_enc: [d_in, d_sae] (stored transposed, W_enc_T: [d_sae, d_in])
    f   = activation(pre)                      sparse codes [batch, d_sae]
    x^  = f @ W_dec + b_dec                    W_dec: [d_sae, d_in]
    loss = mean_batch ||x - x^||^2 + penalty   (squared error summed over dims, as SAELens)

Sparse codes are handled as (row, latent, value) triples: decoding gathers the decoder rows that fired and the
backward pass scatters into only those rows, so of the four big matmuls of a dense SAE step only the encoder's
forward one remains. Batches where many latents fire (JumpReLU, ReLU early on) take the dense matmul path.
"""
from __future__ import annotations

import math

import torch

EPS = 1e-8


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


def encode_pre(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Pre-activations (x - b_dec) @ W_enc + b_enc: [B, d_sae]."""
    return torch.addmm(p["b_enc"], x - p["b_dec"], p["W_enc_T"].T)


def decode(rows, atoms, vals, B: int, b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """x^ = f @ W_dec (+ b_dec) from sparse codes (rows, values) whose decoder rows `atoms` ([nnz, d_in]) the
    caller has gathered (it needs them again for the gradients): [B, d_in]."""
    x_hat = b_dec.expand(B, -1).clone() if b_dec is not None else atoms.new_zeros(B, atoms.shape[1])
    return x_hat.index_add_(0, rows, atoms * vals[:, None])


def above(pre: torch.Tensor, threshold) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes of a per-latent threshold (a number or [d_sae]): (rows, latents, values), all [nnz]."""
    rows, lat = (pre > threshold).nonzero(as_tuple=True)
    return rows, lat, pre[rows, lat]


def relu_kept(rows, lat, vals, training: bool):
    """The ReLU after a top-k selection. Training keeps the shape (boolean indexing costs more than the zeros;
    the gradient step masks by vals > 0); inference drops the zeros."""
    if training:
        return rows, lat, vals.clamp_min(0)
    keep = vals > 0
    return rows[keep], lat[keep], vals[keep]


def aux_grads(pre, xc, err, p, g, dead, aux_k, aux_coef, info) -> None:
    """OpenAI's AuxK: the top aux_k dead latents reconstruct the residual x - x^ (no bias); adds to g."""
    B = pre.shape[0]
    n_dead = int(dead.sum())
    kk = min(aux_k, n_dead)
    pre_dead = pre.masked_fill(~dead, -math.inf)
    vals, lat = pre_dead.topk(kk, dim=1, sorted=False)  # [B, kk]
    rows = torch.arange(B, device=pre.device).repeat_interleave(kk)
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


class Arch:
    """One SAE architecture. An instance holds the estimator's hyper-parameters; `SparseAutoencoder` makes it
    once per fit or transform, never per step.

    step(x, p, state, aux_k, aux_coef) -> (grads keyed like p, info): the loss and hand-written gradients of a
    batch (checked against autograd in the tests). info has the loss terms, the batch's firing counts per latent
    `fired` ([d_sae]), the per-sample squared error `se` ([B]) and the error `err` ([B, d_in]) for resampling.
    """

    name = ""                 # the registry key: SparseAutoencoder(arch=name)
    saelens = ""              # cfg.json "architecture" in SAELens's layout
    unit_decoder = True       # decoder rows kept on the unit sphere (only ReLU+L1 weights its penalty by their norms)
    threshold_weight = False  # inference cuts at a per-latent threshold, saved as the "threshold" weight
    saelens_rescale = False   # SAELens's cfg may say rescale_acts_by_decoder_norm (it does for its topk)

    def __init__(self, k: int = 5, l1: float | None = None, l0: float = 0.01, bandwidth: float = 0.05):
        self.k = k
        self.bandwidth = bandwidth
        self.penalty = 0.0  # the coefficient of the sparsity term in the loss, where there is one

    # ------------------------------------------------------------ set-up

    def check(self, n_latents: int) -> None:
        """Refuse hyper-parameters this architecture cannot train with (InputError)."""

    def init_params(self, d_in: int, d_sae: int, b_dec: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Unit random decoder rows, encoder = decoder transpose, zero encoder bias, b_dec given."""
        W_dec = torch.randn(d_sae, d_in, generator=gen)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        return {"W_enc_T": W_dec.clone(), "b_enc": torch.zeros(d_sae), "W_dec": W_dec, "b_dec": b_dec.clone().float()}

    def init_from_data(self, p: dict[str, torch.Tensor], pre: torch.Tensor, init_rate: float) -> None:
        """Adjust fresh parameters to the pre-activations pre: [samples, d_sae] of a data sample."""

    def init_state(self, state: dict) -> None:
        """Add what this architecture tracks while training to the per-latent counters."""

    # ------------------------------------------------------------ codes

    def threshold(self, p: dict[str, torch.Tensor], state: dict) -> torch.Tensor | None:
        """The per-latent inference threshold ([d_sae] or a scalar), None where inference is no threshold."""
        return None

    def select(self, pre: torch.Tensor, p: dict[str, torch.Tensor], state: dict, training: bool):
        """The active codes of pre-activations pre: [B, d_sae] as (rows, latents, values), all [nnz]."""
        raise NotImplementedError

    def solver(self, codes) -> tuple[str, dict, float]:
        """How unfolding codes for this SAE's own decoder under its own objective, for the amortization gap:
        (sensing method, its keyword arguments, the L1 weight of the objective). The default: OMP with the
        encoder's mean L0 (rounded) as k, codes: the encoder's."""
        import monosemantic.recovery as R

        return "omp", dict(k=max(1, round(R.l0(codes))), tol=1e-9), 0.0

    # ------------------------------------------------------------ saving

    def cfg(self) -> dict:
        """This architecture's fields of SAELens's cfg.json."""
        return {}

    def load_threshold(self, t: torch.Tensor, p: dict[str, torch.Tensor], state: dict) -> None:
        """Take a saved "threshold" weight ([d_sae]) back into params or state."""

    # ------------------------------------------------------------ training

    def step(self, x: torch.Tensor, p: dict[str, torch.Tensor], state: dict, aux_k: int, aux_coef: float):
        raise NotImplementedError

    def restart_bias(self, p: dict[str, torch.Tensor], dead: torch.Tensor, x: torch.Tensor, rate: float) -> None:
        """The encoder bias of resampled latents `dead`: one making each fire on about `rate` of the batch x."""
        pre = (x - p["b_dec"]) @ p["W_enc_T"][dead].T  # [B, n_dead]
        p["b_enc"][dead] = -pre.quantile(1 - rate, dim=0)

    def sparse_penalty(self, p, g, lat, vals, dvals, B: int, info: dict) -> None:
        """Add the penalty's gradients to dvals ([nnz]) and g on the sparse path."""

    def dense_penalty(self, pre, theta, p, f, mask, df, g, B: int, info: dict) -> None:
        """Add the penalty's gradients to df ([B, d_sae]) and g on the dense path (theta: where mask cut pre)."""

    def sparse_step(self, x, xc, pre, p, rows, lat, vals, state, aux_k: int, aux_coef: float, relu_after: bool):
        """Gradients from sparse codes (rows, lat, vals) of pre: [B, d_sae]; relu_after: the codes are a top-k
        selection whose values the ReLU still has to cut (vals <= 0 give no gradient)."""
        B = x.shape[0]
        n = p["W_dec"].shape[0]
        g: dict[str, torch.Tensor] = {}
        info: dict = {}
        # index_select, not fancy indexing: ~10x faster for whole rows on CPU
        Wd = p["W_dec"].index_select(0, lat)  # [nnz, d]
        x_hat = decode(rows, Wd, vals, B, p["b_dec"])
        err = x_hat - x  # [B, d]
        ge = err * (2 / B)
        ge_r = ge.index_select(0, rows)  # [nnz, d]
        dvals = (Wd * ge_r).sum(1)  # [nnz]
        active = vals > 0
        if relu_after:
            dvals *= active
        g["W_dec"] = torch.zeros_like(p["W_dec"]).index_add_(0, lat, ge_r * vals[:, None])
        self.sparse_penalty(p, g, lat, vals, dvals, B, info)
        g["W_enc_T"] = torch.zeros_like(p["W_enc_T"]).index_add_(0, lat, xc.index_select(0, rows) * dvals[:, None])
        g["b_enc"] = p["b_enc"].new_zeros(n).index_add_(0, lat, dvals)
        fired = torch.bincount(lat, weights=active.float(), minlength=n).long()
        info["l0"] = float(active.sum()) / B
        if aux_coef > 0 and "dead" in state and state["dead"].any():
            aux_grads(pre, xc, err, p, g, state["dead"], aux_k, aux_coef, info)
        return _finish(p, g, info, ge, err, fired)

    def dense_step(self, x, xc, pre, p, mask, theta):
        """Gradients of the codes f = pre * mask, with mask: [B, d_sae] = pre > theta."""
        B = x.shape[0]
        g: dict[str, torch.Tensor] = {}
        info: dict = {}
        f = pre * mask  # [B, n]
        x_hat = torch.addmm(p["b_dec"], f, p["W_dec"])
        err = x_hat - x
        ge = err * (2 / B)
        df = ge @ p["W_dec"].T  # [B, n]
        g["W_dec"] = f.T @ ge
        self.dense_penalty(pre, theta, p, f, mask, df, g, B, info)
        gpre = df * mask
        g["W_enc_T"] = gpre.T @ xc
        g["b_enc"] = gpre.sum(0)
        info["l0"] = float(mask.sum() / B)
        return _finish(p, g, info, ge, err, mask.sum(0))


def _finish(p, g, info, ge, err, fired):
    """The decoder bias's gradient (through x^ and through the encoder's input x - b_dec) and the step's info."""
    g["b_dec"] = ge.sum(0) - g["b_enc"] @ p["W_enc_T"]
    se = (err ** 2).sum(1)  # [B]
    info["mse"] = float(se.mean())
    info["fired"] = fired
    info["se"] = se
    info["err"] = err
    return g, info
