"""Unfolding as an experiment: saved dictionaries and data files in, codes out (`monosemantic unfold`), and an
SAE's encoder scored against unfolding on its own decoder (the amortization gap).

The solvers live in `sensing`, which takes matrices; this module turns a fitted estimator into its matrix
(decoder rows `components_`, offset `mean_`) and runs an SAE's own encoder for method "sae".
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import monosemantic.recovery as R
import monosemantic.pairs as P
from monosemantic.data import load_data, read_arrays, split, synth_uniform, to_output
from monosemantic.dictionary import load
from monosemantic.dictionary.base import DictionaryEstimator
from monosemantic.config import UnfoldConfig
from monosemantic.devices import resolve
from monosemantic.errors import InputError
from monosemantic.measures import REPRESENTED
from monosemantic.runs import check_new_dir, write_run
from monosemantic.sensing import (METHODS as SOLVERS, Unfolding, check_data, check_dictionary, rel_residual,
                                  unfold_info, warn_unconverged)
from monosemantic.toy.sampler import FeatureSampler, probabilities
from monosemantic.toy.train import train_toy

METHODS = (*SOLVERS, "sae")


def atoms_of(dictionary) -> tuple[np.ndarray, np.ndarray | None]:
    """(F: [atoms, d] float64, offset: [d] float64 or None) of a fitted estimator or a bare matrix, checked."""
    if isinstance(dictionary, DictionaryEstimator):
        dictionary._fitted()
        F = check_dictionary(dictionary.components_)
        return F, np.asarray(getattr(dictionary, "mean_", np.zeros(F.shape[1])), dtype=np.float64)
    return check_dictionary(dictionary), None


def unfold_with(X, dictionary, method: str = "omp", tol: float = 1e-6, k: int | None = None, alpha: float = 0.01,
                positive: bool = False, progress: bool = False, device: str | torch.device = "cpu") -> Unfolding:
    """`sensing.unfold_info` on an estimator's atoms and offset (or a bare F), solved on `device`; method "sae"
    runs the estimator's own encoder."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    F, offset = atoms_of(dictionary)
    if method != "sae":
        return unfold_info(X, F, method, tol, k, alpha, positive, progress, offset=offset, device=device)
    if not isinstance(dictionary, DictionaryEstimator):
        raise InputError("method 'sae' needs a saved dictionary (an SAE directory), not a bare F")
    Xn = check_data(X, F.shape[1])
    C = dictionary.transform(Xn)
    return Unfolding(C, rel_residual(Xn, C.astype(np.float64), F, offset), np.zeros(0, np.int64))


def unfold_codes(X, dictionary, method: str = "omp", tol: float = 1e-6, k: int | None = None, alpha: float = 0.01,
                 positive: bool = False, output: str = "scipy", device: str | torch.device = "cpu"):
    """`sensing.unfold` on an estimator (or a bare F): sparse codes [samples, atoms]."""
    u = unfold_with(X, dictionary, method, tol, k, alpha, positive, device=device)
    if method != "sae":
        warn_unconverged(u, method, tol)
    return to_output(u.codes, output)


def load_dictionary(path: str | Path):
    """A saved dictionary directory (an estimator) or a data file (.npy, .npz, .safetensors) holding F: [atoms, d]."""
    path = Path(path)
    if path.is_dir():
        return load(path)
    if not path.is_file():
        raise InputError(f"missing dictionary: {path}")
    arrays, _ = read_arrays(path, mmap=False)
    F = arrays.get("F", arrays.get("X") if path.suffix.lower() == ".npy" else None)  # a .npy holds one array
    if F is None:
        raise InputError(f"{path} holds no dictionary F: [atoms, d] (found {sorted(arrays) or 'nothing'})")
    return F


def unfold_run(cfg: UnfoldConfig, out: str | Path, overwrite: bool = False, progress: bool = False) -> dict:
    """Unfold a data file against a dictionary, write OUT: codes.safetensors (CSR indptr, indices, values),
    result.json (shape, wall_s = compute only, samples_per_s, unconverged count and indices), config.json.
    Returns the result."""
    data, dictionary, method, tol, k, alpha, positive = (cfg.data, cfg.dictionary, cfg.method, cfg.tol, cfg.k,
                                                          cfg.alpha, cfg.positive)
    out = check_new_dir(out, overwrite)
    device = resolve(cfg.device)
    if not tol > 0:
        raise InputError(f"tol must be > 0 (it is relative: ||x - D c|| <= tol ||x||), got {tol}")
    if not alpha > 0:
        raise InputError(f"alpha must be > 0, got {alpha}")
    D = load_dictionary(dictionary)
    X = load_data(data).X
    t = time.perf_counter()
    u = unfold_with(X, D, method, tol, k, alpha, positive, progress, device)
    wall = time.perf_counter() - t
    C = u.codes
    result = {"shape": list(C.shape), "nnz": int(C.nnz), "l0": float(C.nnz / max(C.shape[0], 1)), "wall_s": wall,
              "samples_per_s": C.shape[0] / wall if wall > 0 else None,
              "max_rel_residual": float(u.rel_residual.max()), "unconverged": int(len(u.unconverged)),
              "unconverged_indices": u.unconverged.tolist()}
    config = {"kind": "unfold", "data": str(data), "dictionary": str(dictionary), "method": method,
              "tol": tol if method == "omp" else None, "k": k if method == "omp" else None,
              "alpha": alpha if method in ("l1", "fista") else None,
              "positive": positive if method in ("l1", "fista") else None, "device": str(device)}
    codes = {"indptr": torch.from_numpy(C.indptr.astype(np.int64)),
             "indices": torch.from_numpy(C.indices.astype(np.int64)),
             "values": torch.from_numpy(C.data.astype(np.float32))}
    write_run(out, config, result, {"codes": codes}, overwrite)
    return result


# ---------------------------------------------------------------- amortization gap


def amortization_gap(sae, X, F, codes_true, enc=None) -> dict[str, dict[str, float]]:
    """An SAE's encoder against unfolding, on data with known features F: [n_features, d] and codes_true.

    Three codes of the same samples X: the encoder's; the best codes for the SAE's own decoder under the SAE's
    own objective (`sae.own_solver`); the same solver on the true dictionary. ReLU+L1 SAEs minimise, per sample,
    ||x - b_dec - sum_i c_i D_i||^2 + l1 sum_i c_i ||D_i|| over c >= 0, which is exactly `lasso` on the unit
    decoder rows with alpha = l1 / 2, positive: its optimum is computed, not approximated. TopK SAEs minimise
    the squared error over codes with at most k atoms: OMP with k atoms (greedy, signed) stands in for it.
    Other architectures use OMP with the encoder's mean L0 (rounded) as k.

    A last row, "exact: true dictionary", is OMP to a relative residual of 1e-6 on the true features: the codes
    that generated the data, the ceiling of all three.

    enc: the encoder's codes of X when the caller has them already (`sae.transform(X)`).

    Returns {row: {support_f1, code_rel_err, fvu, l0, objective, unconverged}}. Codes on the SAE's atoms are
    matched to the true features (Hungarian) before they are scored; objective is the per-sample mean of
    0.5 ||x - x_hat||^2 (+ alpha ||a||_1 with unit-atom codes a for ReLU+L1), so the encoder's excess over "own decoder" is the gap that better inference would close.
    """
    X = np.asarray(check_data(X, sae.d_in_), dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    A, mean = atoms_of(sae)
    enc = sae.transform(X) if enc is None else enc
    method, kw, alpha = sae.own_solver(enc)
    own = unfold_info(X, A, method, offset=mean, **kw)
    true = unfold_info(X, F, method, **kw)
    exact = unfold_info(X, F, "omp", tol=1e-6)

    def scores(C, atoms, offset, matched):
        C64 = C.astype(np.float64)
        X_hat = C64 @ atoms + offset
        a = abs(C64) @ np.linalg.norm(atoms, axis=1)  # [samples] L1 norm of the unit-atom codes
        codes = R.code_scores(codes_true, C, F, atoms) if matched else R.code_scores(codes_true, C)
        return {"support_f1": codes["support_f1"], "code_rel_err": codes["code_rel_err"], "fvu": R.fvu(X, X_hat),
                "l0": R.l0(C), "objective": float((0.5 * ((X - X_hat) ** 2).sum(1) + alpha * a).mean())}

    out = {"encoder": {**scores(enc, A, mean, True), "unconverged": 0},
           "unfold: own decoder": {**scores(own.codes, A, mean, True), "unconverged": 0},
           "unfold: true dictionary": {**scores(true.codes, F, 0.0, False), "unconverged": 0},
           "exact: true dictionary": {**scores(exact.codes, F, 0.0, False), "unconverged": int(len(exact.unconverged))}}
    if method == "l1":  # OMP capped at k atoms stops above tol by design; only the lasso's count means anything
        out["unfold: own decoder"]["unconverged"] = int(len(own.unconverged))
        out["unfold: true dictionary"]["unconverged"] = int(len(true.unconverged))
    return out


# ---------------------------------------------------------------- toy models unfolded (the report's section)
# Toy ReLU-output models (n = 40 features, m = 10 dims, uniform importance) trained at several sparsities; their
# activations h = W x are unfolded onto W's represented columns. The unfolded codes are the larger model without
# superposition (its error against the true x and the toy model's output is measured across sparsity), and for
# pairs of samples the cosine similarity of the raw activations is compared with the Jaccard overlap of the
# supports: the more superposition, the less the first says about the second.

SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995)
N, M = 40, 10
SAMPLES = 4000
PAIR_SAMPLES = 1500  # every pair among these many samples (~1.1M pairs) is scored
PLOTTED = 3000  # random pairs drawn in the scatter


def toy_unfolding(quick: bool, progress: bool) -> dict:
    """Per sparsity: the unfolded model's errors, and cosine against overlap over pairs of samples.

    One ReLU-output toy model per sparsity (trained together). Its activations h = W x are unfolded onto W's
    represented columns (unit norm) by OMP (relative tol 0.05, at most m atoms: the unrepresented features leave
    a small residual) and by the non-negative lasso (alpha 1e-3); the unfolded model's output is x_hat_i =
    code_i / ||W_i|| for represented i and 0 for the others. Errors are sum ||x_hat - x||^2 / sum ||x||^2 over
    the samples, against the true x and against the toy model's own output ReLU(W^T W x + b).
    """
    run = train_toy("relu-output", N, M, probabilities(list(SPARSITIES), N), torch.ones(N),
                    steps=600 if quick else 4000, seeds=1, progress=progress, eval_batch=2048)
    W_all, b_all = run.model.W.detach()[run.kept], run.model.b.detach()[run.kept]  # [configs, m, n], [configs, n]
    rng = np.random.default_rng(0)
    out = {}
    for c, s in enumerate(SPARSITIES):
        W, b = W_all[c].double(), b_all[c].double()  # [m, n], [n]
        norms = W.norm(dim=0)
        keep = (norms > REPRESENTED).nonzero()[:, 0]
        x = FeatureSampler(probabilities(s, N), seed=1).sample(SAMPLES)[:, 0, :].double()  # [b, n]
        x = x[(x[:, keep] != 0).any(1)]  # samples with at least one represented feature on
        h = (x @ W.T).numpy()  # [b, m]
        toy_out = torch.relu(x @ W.T @ W + b).numpy()  # [b, n]
        F = (W[:, keep] / norms[keep]).T.numpy()  # [represented, m]
        x_np, scale = x.numpy(), norms[keep].numpy()
        r = dict(represented=int(len(keep)), samples=int(len(x)),
                 mean_active=float((x_np[:, keep.numpy()] != 0).sum(1).mean()),
                 toy_err=_rel_err(toy_out, x_np))
        for method, kw in (("omp", dict(tol=0.05, k=M)), ("l1", dict(alpha=1e-3, positive=True))):
            u = unfold_info(h, F, method, **kw)
            x_hat = np.zeros_like(x_np)
            x_hat[:, keep.numpy()] = u.codes.toarray() / scale  # codes on unit columns -> feature values
            r[f"{method}_err"] = _rel_err(x_hat, x_np)
            r[f"{method}_vs_toy"] = _rel_err(x_hat, toy_out, x_np)
            r[f"{method}_exact_support"] = float(((x_hat != 0) == (x_np != 0))[:, keep.numpy()].all(1).mean())
            r[f"{method}_unconverged"] = int(len(u.unconverged))
            if method == "omp":
                on = u.codes.toarray() != 0  # [b, represented] unfolded supports
                r["unfold_support_f1"] = R.code_scores(x_np[:, keep.numpy()] * scale, u.codes)["support_f1"]
        r.update(_pairs(h, on, x_np[:, keep.numpy()] != 0, keep.numpy(), rng))
        out[str(s)] = r
    return out


def _rel_err(a: np.ndarray, b: np.ndarray, norm_of: np.ndarray | None = None) -> float:
    """sum ||a - b||^2 / sum ||norm_of||^2 (norm_of defaults to b)."""
    return float(((a - b) ** 2).sum() / (((b if norm_of is None else norm_of) ** 2).sum()))


def _pairs(h: np.ndarray, on: np.ndarray, t_on: np.ndarray, names: np.ndarray, rng) -> dict:
    """Cosine of h against the Jaccard overlap of supports over every pair of the first PAIR_SAMPLES samples (on:
    unfolded, t_on: true supports, both [b, represented]); the most striking pair of each kind by the true
    supports; and PLOTTED random pairs for the scatter."""
    B = min(len(h), PAIR_SAMPLES)
    a, b = P.all_pairs(B)
    cos = P.cosines(h[:B], a, b)
    _, jac = P.overlaps(on[:B], a, b)
    t_inter, jac_true = P.overlaps(t_on[:B], a, b)
    pit = P.pitfall(cos, t_inter, jac_true)
    examples = [{"kind": kind, "cosine": float(cos[i]), "jaccard": float(jac_true[i]),
                 "features of a": names[t_on[a[i]]].tolist(), "features of b": names[t_on[b[i]]].tolist()}
                for kind, i in pit["worst"].items() if i is not None]
    shown = rng.choice(len(cos), min(PLOTTED, len(cos)), replace=False)
    return dict(pairs=int(len(cos)), correlation=float(np.corrcoef(cos, jac)[0, 1]),
                correlation_true_supports=float(np.corrcoef(cos, jac_true)[0, 1]),
                high_cos_no_shared=pit["high_cos_no_shared"], low_cos_mostly_shared=pit["low_cos_mostly_shared"],
                examples=examples, cos=cos[shown], jac=jac[shown])


def unfolding_speed(quick: bool) -> dict:
    _, ev = split(synth_uniform(samples=20_000 if quick else 40_000, seed=0), 2000 if quick else 10_000)
    out = {}
    for method, kw in (("omp", dict(tol=1e-6)), ("l1", dict(alpha=0.01, positive=True))):
        t = time.perf_counter()
        u = unfold_info(ev.X, ev.F, method, **kw)
        wall = time.perf_counter() - t
        out[method] = dict(support_f1=R.code_scores(ev.codes, u.codes)["support_f1"], samples_per_s=len(ev.X) / wall,
                           unconverged=int(len(u.unconverged)))
    return out


def demo(quick: bool, progress: bool) -> dict:
    """The report's unfolding results: toy models unfolded across sparsity, and the solvers' speed."""
    return {"toy": toy_unfolding(quick, progress), "speed": unfolding_speed(quick)}
