"""Unfolding: sparse codes of many activation vectors against one dictionary matrix (compressed sensing).

    unfold(X, F, method="omp" | "l1" | "fista", tol=1e-6, k=None, alpha=0.01, positive=False, offset=None,
           device="cpu" | "cuda" | "cuda:N" | "auto") -> codes (scipy CSR [samples, atoms]; output="torch" for torch
           sparse CSR)

`F: [atoms, d]` (any row norms; codes are returned for the atoms as given, so X - offset ~ codes @ F);
`offset: [d]` (an SAE's b_dec, a dictionary's mean) is subtracted first. Sensing takes matrices only: to unfold
against a fitted estimator pass its `components_` and `mean_` (`experiments.unfolding` does this for saved
dictionaries, and runs an SAE's own encoder).

OMP is batched: every sample of a chunk adds one atom per iteration, all together. Each sample keeps a QR
factorisation of its selected (unit) atoms, built by modified Gram-Schmidt, and its residual in d-space, so an
iteration is one [samples, d] x [d, atoms] matmul to score the atoms (in float32: it only ranks them) plus
O(samples x selected x d) vector work; the least squares is solved once per sample, when it stops (R c = Q^T x).
Residuals and factors are float64, so the stop test ||x - D c||_2 <= tol ||x||_2 (tol relative) resolves
tol = 1e-6 and below. A sample stops there, or at k atoms, or when the next atom is linearly dependent on its
support; finished samples leave the batch. Those that end above tol are reported as unconverged (the relative
residual is recomputed from the final codes), never silently zero.

The L1 path (`lasso`) solves the lasso exactly by a batched active-set method started from the OMP supports
(see its docstring); it gives scikit-learn's Lasso-LARS codes to ~1e-7 at a fraction of the time. `fista` solves
the same lasso by plain batched FISTA, for reference.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from monosemantic.errors import InputError
from monosemantic.data import as_matrix, to_output
from monosemantic.devices import resolve
from monosemantic.progress import track

METHODS = ("omp", "l1", "fista")
CHUNK = 2048  # samples coded together (their state: [chunk, selected, d] float64)


@dataclass
class Unfolding:
    """codes: CSR [samples, atoms] float32; rel_residual: [samples] ||x - codes @ F|| / ||x|| (0 for x = 0);
    unconverged: indices of the samples that did not converge (OMP: rel_residual > tol; L1: KKT conditions not met;
    FISTA: codes still moving after max_iter)."""

    codes: sp.csr_matrix
    rel_residual: np.ndarray
    unconverged: np.ndarray


def check_dictionary(F) -> np.ndarray:
    """F: [atoms, d] as float64, checked: numeric, 2-D, finite, no zero atom."""
    if isinstance(F, torch.Tensor):
        F = F.detach().cpu().numpy()
    F = np.asarray(F)
    if F.dtype.kind not in "fiu":
        raise InputError(f"dictionary must be a numeric array F: [atoms, d], got dtype {F.dtype}")
    F = F.astype(np.float64)
    if F.ndim != 2 or 0 in F.shape:
        raise InputError(f"dictionary must be F: [atoms, d], got shape {list(F.shape)}")
    if not np.isfinite(F).all():
        raise InputError("dictionary has NaN or Inf")
    norms = np.linalg.norm(F, axis=1)
    if (norms <= 1e-12).any():
        bad = np.flatnonzero(norms <= 1e-12)
        raise InputError(f"dictionary has {len(bad)} atom(s) of zero norm (first: row {bad[0]})")
    return F


def check_offset(offset, d: int) -> np.ndarray | None:
    """offset: [d] as float64 (None stays None)."""
    if offset is None:
        return None
    if isinstance(offset, torch.Tensor):
        offset = offset.detach().cpu().numpy()
    offset = np.asarray(offset, dtype=np.float64)
    if offset.shape != (d,) or not np.isfinite(offset).all():
        raise InputError(f"offset must be a finite vector of d={d} values, got shape {list(offset.shape)}")
    return offset


def check_data(X, d: int) -> np.ndarray:
    """X: [samples, d] checked against the atoms' d (a memory-mapped X stays on disk)."""
    X = as_matrix(X)  # checks shape and NaN/Inf
    if X.shape[1] != d:
        raise InputError(f"data have d={X.shape[1]} but the dictionary's atoms have d={d}")
    return np.asarray(X)


def _chunks(X: np.ndarray, offset: np.ndarray | None, progress: bool, label: str, size: int = 0,
            device: torch.device | None = None):
    """(start, x - offset as float64 torch [b, d] on `device`) for each chunk of X, one chunk in memory at a time."""
    size = size or CHUNK
    for s in track(range(0, len(X), size), label, progress):
        x = np.asarray(X[s:s + size], dtype=np.float64)
        yield s, torch.from_numpy(x if offset is None else x - offset).to(device)


def omp(X: np.ndarray, F: np.ndarray, tol: float = 1e-6, k: int | None = None, offset: np.ndarray | None = None,
        progress: bool = False, device: str | torch.device = "cpu") -> Unfolding:
    """Batched orthogonal matching pursuit. X: [samples, d] (minus offset: [d], when given), F: [atoms, d]
    (non-zero rows, any norm). Each chunk is solved on `device`; its codes come back once it is done."""
    if not tol > 0:
        raise InputError(f"tol must be > 0 (it is relative: ||x - D c|| <= tol ||x||), got {tol}")
    n_atoms, d = F.shape
    k_max = min(n_atoms, d) if k is None else int(k)
    if not 1 <= k_max <= n_atoms:
        raise InputError(f"k (atoms per sample) must lie in [1, {n_atoms}], got {k}")
    norms = np.linalg.norm(F, axis=1)
    device = resolve(device)
    U = torch.from_numpy(F / norms[:, None]).to(device)  # [atoms, d] unit rows
    counts, cols, vals = [], [], []
    for _, x in _chunks(X, offset, progress, "unfold (omp)", device=device):  # x: [b, d]
        idx, coef, n_sel = _omp_chunk(x, U, tol, k_max)
        on = np.arange(k_max)[None, :] < n_sel[:, None]  # [b, k_max] ragged supports, row-major
        counts.append(n_sel)
        cols.append(idx[on])
        vals.append(coef[on])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    c, v = np.concatenate(cols), np.concatenate(vals)
    v = v / norms[c]  # codes for the atoms as given: x ~ sum_i c_i F_i
    C64 = sp.csr_matrix((v, c, indptr), shape=(len(X), n_atoms))
    C64.sort_indices()
    C64.eliminate_zeros()  # an atom found dependent on its support carries a zero coefficient
    rel = rel_residual(X, C64, F, offset)
    return Unfolding(C64.astype(np.float32), rel, np.flatnonzero(rel > tol))


def rel_residual(X: np.ndarray, C: sp.csr_matrix, F: np.ndarray, offset: np.ndarray | None = None,
                  chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(X))
    for s, x in _chunks(X, offset, False, "", chunk):
        x = x.numpy()
        nx = np.linalg.norm(x, axis=1)
        r = np.linalg.norm(x - C[s:s + chunk] @ F, axis=1)
        out[s:s + chunk] = np.where(nx > 0, r / np.maximum(nx, 1e-300), 0.0)
    return out


def _omp_chunk(x: torch.Tensor, U: torch.Tensor, tol: float, k_max: int, min_corr: float = 0.0):
    """One chunk of batched OMP. x: [b, d] float64, U: [atoms, d] unit rows.

    A sample also stops when no atom correlates with its residual by more than min_corr (the lasso's warm start
    uses alpha: atoms below it cannot enter the lasso's support from that residual).

    Returns idx [b, k_max], coef [b, k_max] (for unit atoms) and n_sel [b] (atoms each sample kept).
    """
    b, d = x.shape
    dev = x.device
    U32T = U.T.float().contiguous()  # [d, atoms]
    idx = torch.zeros(b, k_max, dtype=torch.long, device=dev)
    coef = torch.zeros(b, k_max, dtype=torch.float64, device=dev)
    n_sel = torch.zeros(b, dtype=torch.long, device=dev)
    # state of the samples still running, compacted as they finish; `who` maps them to rows of the chunk
    who = torch.arange(b, device=dev)
    stop2 = (tol ** 2) * (x * x).sum(1)  # [r] squared residual at which a sample is done
    res = x.clone()  # [r, d] residual x - Q Q^T x
    Q: list[torch.Tensor] = []  # [r, d] each: orthonormal basis of the selected atoms, one slot per atom
    cap = min(k_max, 8)  # support capacity of R, z, S, doubled as needed
    R = x.new_zeros(len(x), cap, cap)  # U_S^T = Q^T R: upper triangular
    z = x.new_zeros(len(x), cap)  # Q^T x
    S = torch.zeros(len(x), cap, dtype=torch.long, device=dev)  # selected atoms
    t = 0
    while True:
        done = (res * res).sum(1) <= stop2
        if t == k_max:
            done[:] = True
        if done.any():
            _finish(done, who, S, R, z, t, idx, coef, n_sel)
            keep = (~done).nonzero()[:, 0]
            if not len(keep):
                break
            who, stop2, res, R, z, S, *Q = (a.index_select(0, keep) for a in (who, stop2, res, R, z, S, *Q))
        if t == cap:
            cap = min(k_max, 2 * cap)
            R = _grow(_grow(R, 1, cap), 2, cap)
            z, S = _grow(z, 1, cap), _grow(S, 1, cap)
        # selection in float32 is enough to rank correlations (the residual itself stays float64)
        score = (res.float() @ U32T).abs_()  # [r, atoms]
        if t:
            score.scatter_(1, S[:, :t], -1.0)  # never re-pick a selected atom
        best, new = score.max(1)  # [r]
        if min_corr > 0:
            weak = best <= min_corr
            if weak.any():
                _finish(weak, who, S, R, z, t, idx, coef, n_sel)
                keep = (~weak).nonzero()[:, 0]
                if not len(keep):
                    break
                who, stop2, res, R, z, S, new, *Q = (a.index_select(0, keep) for a in (who, stop2, res, R, z, S, new, *Q))
        v = U.index_select(0, new)  # [r, d]
        w = v.new_zeros(len(v), t + 1)
        for j, q in enumerate(Q):  # modified Gram-Schmidt (supports are small and well conditioned)
            h = (q * v).sum(1)
            v.addcmul_(h[:, None], q, value=-1.0)
            w[:, j] = h
        nv = v.norm(dim=1)  # [r]
        dependent = nv <= 1e-9  # the atom lies in the span of the support: keep t atoms and stop
        if dependent.any():
            _finish(dependent, who, S, R, z, t, idx, coef, n_sel)
            keep = (~dependent).nonzero()[:, 0]
            if not len(keep):
                break
            who, stop2, res, R, z, S, new, v, w, nv, *Q = (
                a.index_select(0, keep) for a in (who, stop2, res, R, z, S, new, v, w, nv, *Q))
        q = v / nv[:, None]
        w[:, t] = nv
        zt = (q * res).sum(1)  # q^T x = q^T res, as res is orthogonal to the earlier q
        Q.append(q)
        R[:, :t + 1, t], z[:, t], S[:, t] = w, zt, new
        res.addcmul_(zt[:, None], q, value=-1.0)
        t += 1
    return idx.cpu().numpy(), coef.cpu().numpy(), n_sel.cpu().numpy()


def _grow(a: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    shape = list(a.shape)
    shape[dim] = size - shape[dim]
    return torch.cat([a, a.new_zeros(shape)], dim)


def _finish(done, who, S, R, z, t, idx, coef, n_sel):
    """Write the least-squares coefficients (R c = z) of the samples marked done, which hold t atoms."""
    if t == 0:
        return
    sel = done.nonzero()[:, 0]
    Rt = R.index_select(0, sel)[:, :t, :t]
    gamma = torch.linalg.solve_triangular(Rt, z.index_select(0, sel)[:, :t, None], upper=True)[..., 0]  # [r, t]
    rows = who[sel]
    idx[rows, :t] = S.index_select(0, sel)[:, :t]
    coef[rows, :t] = gamma
    n_sel[rows] = t


def lasso(X: np.ndarray, F: np.ndarray, alpha: float = 0.01, positive: bool = False, max_rounds: int = 500,
          slack: int = 8, offset: np.ndarray | None = None, progress: bool = False,
          device: str | torch.device = "cpu") -> Unfolding:
    """Exact L1 codes: min_c 0.5 ||x - sum_i c_i u_i||^2 + alpha ||c||_1 (c >= 0 when positive), u_i = F_i / ||F_i||.

    The same objective as scikit-learn's SparseCoder(transform_alpha=alpha) with unit atoms. A batched active-set
    method: start from each sample's OMP support, solve the equality system G_SS c = U_S x - alpha s on the
    support (s the signs); where that solution keeps its signs, add the atom violating the KKT condition
    |u_i^T (x - U c)| <= alpha the most, and where it does not, step towards it until the first coefficient
    reaches zero and drop that atom (see `_active_set`); repeat until no sample changes. A sample whose KKT
    conditions do not hold (to 1e-6 relative) after max_rounds, or whose support outgrows d + slack atoms, is reported
    as unconverged. The OMP warm start stops when no atom correlates with the residual by more than alpha.
    Returned codes are for the atoms as given, like `omp`.
    """
    if not alpha > 0:
        raise InputError(f"alpha must be > 0, got {alpha}")
    n_atoms, d = F.shape
    norms = np.linalg.norm(F, axis=1)
    device = resolve(device)
    U = torch.from_numpy(F / norms[:, None]).to(device)  # [atoms, d]
    G = U @ U.T  # [atoms, atoms]
    counts, cols, vals, bad = [], [], [], []
    for s, x in _chunks(X, offset, progress, "unfold (l1)", device=device):  # x: [b, d]
        idx, _, n_sel = _omp_chunk(x, U, 1e-3, min(n_atoms, d), min_corr=alpha)
        c, S, ok = _active_set(x, U, G, torch.from_numpy(idx).to(device), torch.from_numpy(n_sel).to(device),
                               alpha, positive, max_rounds, slack)
        on = c != 0  # [b, K]
        order = torch.argsort(torch.where(on, S, n_atoms), dim=1)  # CSR wants each row's atoms together
        c, S, on = c.gather(1, order).cpu(), S.gather(1, order).cpu(), on.gather(1, order).cpu()
        counts.append(on.sum(1).numpy())
        cols.append(S[on].numpy())
        vals.append(c[on].numpy())
        bad.append(np.flatnonzero(~ok.cpu().numpy()) + s)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    c, v = np.concatenate(cols), np.concatenate(vals)
    C64 = sp.csr_matrix((v / norms[c], c, indptr), shape=(len(X), n_atoms))
    return Unfolding(C64.astype(np.float32), rel_residual(X, C64, F, offset), np.concatenate(bad))


def _active_set(x, U, G, idx, n_sel, alpha, positive, max_rounds, slack):
    """x: [b, d]; idx/n_sel: the OMP supports. Returns coefficients c [b, K], atoms S [b, K], converged [b].

    Each sample keeps a feasible iterate c (c_i s_i >= 0 on its support). A round solves the equality system on
    the support; if that solution z is feasible it becomes c and the worst KKT violator joins (at zero, with its
    sign); if not, c moves towards z only as far as the first coefficient reaching zero, and the atoms that
    reach it leave (the feature-sign search of Lee et al. 2007). The objective never increases, so a sample
    cannot cycle through supports; a tiny ridge keeps a support that holds a null direction solvable, and the
    move along it ends where a coefficient reaches zero.
    """
    b, n_atoms, dev = len(x), len(U), x.device
    K = min(int(n_sel.max()) + slack, n_atoms)  # support slots; grown by `slack` when a sample fills them
    K_cap = min(n_atoms, max(K, len(U[0]) + slack))  # a lasso support outgrows d only in degenerate cases
    S = torch.zeros(b, K, dtype=torch.long, device=dev)
    S[:, :idx.shape[1]] = idx[:, :K] if idx.shape[1] >= K else idx
    M = torch.arange(K, device=dev)[None, :] < n_sel[:, None]  # [b, K] slots in use
    bx = x @ U.T  # [b, atoms] u_i^T x
    sign = x.new_ones(b, K)
    if not positive:
        sign = torch.sign(bx.gather(1, S)).masked_fill_(~M, 1.0)
    c = x.new_zeros(b, K)  # the feasible iterate
    c_out = x.new_zeros(b, K_cap)
    S_out = torch.zeros(b, K_cap, dtype=torch.long, device=dev)
    ok = torch.zeros(b, dtype=torch.bool, device=dev)
    who = torch.arange(b, device=dev)
    tol = 1e-6 * alpha
    for _ in range(max_rounds):
        if K < K_cap and M.all(1).any():  # room for the next atom of every sample
            grow = min(slack, K_cap - K)
            S, M, c = _grow(S, 1, K + grow), _grow(M, 1, K + grow), _grow(c, 1, K + grow)
            sign = torch.cat([sign, sign.new_ones(len(S), grow)], 1)
            K += grow
        eye = torch.eye(K, dtype=torch.float64, device=dev)
        # solve on the support; unused slots get the identity and a zero right-hand side
        Mf = M.double()
        ridge = 1 - Mf + 1e-10 * Mf  # [r, K] identity on unused slots, a tiny ridge on the support
        Gs = G[S[:, :, None], S[:, None, :]] * (Mf[:, :, None] * Mf[:, None, :]) + eye * ridge[:, :, None]
        rhs = (bx.gather(1, S) - alpha * sign) * Mf
        z, info = torch.linalg.solve_ex(Gs, rhs)
        wrong = M & (z * sign <= 0)
        bad = wrong.any(1)  # [r] z infeasible: step towards it instead
        ratio = torch.where(wrong, c / (c - z).masked_fill(~wrong, 1.0), torch.inf)  # where each reaches zero
        t = torch.where(bad, ratio.min(1).values.clamp(0, 1), 1.0)  # [r]
        hit = wrong & (ratio <= t[:, None] + 1e-12)
        M = M & ~hit
        c = (c + t[:, None] * (z - c)) * M
        res = x - torch.einsum("rk,rkd->rd", c, U[S])  # [r, d]
        corr = res @ U.T  # [r, atoms] u_i^T (x - U c)
        corr.scatter_(1, S, torch.where(M, torch.zeros_like(c), corr.gather(1, S)))  # only atoms outside S
        viol = corr if positive else corr.abs()
        worst, new = viol.max(1)
        add = (worst > alpha + tol) & ~bad
        failed = (info != 0) | ~torch.isfinite(z).all(1)
        done = ~bad & ~add & ~failed
        free = (~M).double().argmax(1)  # first free slot
        full = add & M.all(1)
        if done.any() or full.any() or failed.any():  # write out finished samples (the others as unconverged)
            fin = (done | full | failed).nonzero()[:, 0]
            c_out[who[fin], :K], S_out[who[fin], :K], ok[who[fin]] = c[fin], S[fin], done[fin]
            keep = (~(done | full | failed)).nonzero()[:, 0]
            if not len(keep):
                return c_out, S_out, ok
            x, bx, S, M, sign, who, add, new, free, corr, c = (
                a.index_select(0, keep) for a in (x, bx, S, M, sign, who, add, new, free, corr, c))
        r = add.nonzero()[:, 0]
        S[r, free[r]] = new[r]
        M[r, free[r]] = True
        sign[r, free[r]] = 1.0 if positive else torch.sign(corr[r, new[r]])
    c_out[who, :K], S_out[who, :K] = c, S  # ran out of rounds: the last iterate, reported as unconverged
    return c_out, S_out, ok


def fista(X: np.ndarray, F: np.ndarray, alpha: float = 0.01, positive: bool = False, max_iter: int = 2000,
          tol: float = 1e-6, offset: np.ndarray | None = None, progress: bool = False,
          device: str | torch.device = "cpu") -> Unfolding:
    """The lasso of `lasso` by FISTA (Beck and Teboulle 2009), batched: every sample of a chunk takes the same
    dense proximal-gradient steps, c <- soft(y - (y G - x U^T) / L, alpha / L), with Nesterov momentum and
    L = ||G||_2. Simple and exact in the limit, but it needs hundreds of dense [samples, atoms] x [atoms, atoms]
    iterations where the active set needs a few small solves: here for reference and for dictionaries too
    large or coherent for `lasso`. A sample stops when no code moves by more than tol x (its largest code) in an
    iteration; those still moving after max_iter are reported as unconverged."""
    if not alpha > 0:
        raise InputError(f"alpha must be > 0, got {alpha}")
    if not tol > 0:
        raise InputError(f"tol must be > 0, got {tol}")
    norms = np.linalg.norm(F, axis=1)
    device = resolve(device)
    U = torch.from_numpy(F / norms[:, None]).to(device)  # [atoms, d]
    G = U @ U.T  # [atoms, atoms]
    L = float(torch.linalg.eigvalsh(G)[-1])
    parts, bad = [], []
    for s, x in _chunks(X, offset, progress, "unfold (fista)", device=device):  # x: [b, d]
        bx = x @ U.T  # [b, atoms]
        c = torch.zeros_like(bx)
        y, t = c.clone(), 1.0
        moving = torch.ones(len(x), dtype=torch.bool, device=device)
        for _ in range(max_iter):
            z = y - (y @ G - bx) / L
            c_new = (z - alpha / L).clamp_min(0) if positive else z.sign() * (z.abs() - alpha / L).clamp_min(0)
            t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
            y = c_new + ((t - 1) / t_new) * (c_new - c)
            moving = (c_new - c).abs().amax(1) > tol * c_new.abs().amax(1).clamp_min(1e-12)
            c, t = c_new, t_new
            if not moving.any():
                break
        parts.append(sp.csr_matrix(c.cpu().numpy()))
        bad.append(np.flatnonzero(moving.cpu().numpy()) + s)
    C64 = sp.vstack(parts, format="csr") @ sp.diags(1 / norms)  # codes for the atoms as given
    C64 = sp.csr_matrix(C64)
    C64.eliminate_zeros()
    return Unfolding(C64.astype(np.float32), rel_residual(X, C64, F, offset), np.concatenate(bad))


def unfold_info(X, F, method: str = "omp", tol: float = 1e-6, k: int | None = None, alpha: float = 0.01,
                positive: bool = False, progress: bool = False, offset=None,
                device: str | torch.device = "cpu") -> Unfolding:
    """Codes and the bookkeeping (relative residuals, unconverged samples); see the module docstring.
    X is read one chunk at a time (a memory-mapped X stays on disk) and solved on `device` (cpu, cuda, cuda:N,
    auto); progress: a bar over the chunks on stderr."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    device = resolve(device)
    F = check_dictionary(F)
    offset = check_offset(offset, F.shape[1])
    Xn = check_data(X, F.shape[1])
    if method == "l1":
        return lasso(Xn, F, alpha, positive, offset=offset, progress=progress, device=device)
    if method == "fista":
        return fista(Xn, F, alpha, positive, offset=offset, progress=progress, device=device)
    return omp(Xn, F, tol, k, offset=offset, progress=progress, device=device)


def warn_unconverged(u: Unfolding, method: str, tol: float) -> None:
    """Samples a solver could not bring within its test are not hidden: a warning names how many."""
    if len(u.unconverged):
        what = {"omp": f"relative residual {tol}", "l1": "the L1 optimality conditions",
                "fista": "FISTA's convergence test"}[method]
        warnings.warn(f"{len(u.unconverged)} sample(s) did not reach {what} "
                      f"(first: {u.unconverged[:5].tolist()}); see unfold_info", RuntimeWarning, stacklevel=3)


def unfold(X, F, method: str = "omp", tol: float = 1e-6, k: int | None = None, alpha: float = 0.01,
           positive: bool = False, output: str = "scipy", offset=None, device: str | torch.device = "cpu"):
    """Sparse codes [samples, atoms] (scipy CSR, or torch sparse CSR with output='torch'), solved on `device`.

    Samples OMP could not bring within tol are not hidden: a warning names how many (use `unfold_info`
    for their indices and residuals).
    """
    u = unfold_info(X, F, method, tol, k, alpha, positive, offset=offset, device=device)
    warn_unconverged(u, method, tol)
    return to_output(u.codes, output)
