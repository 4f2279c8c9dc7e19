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
from monosemantic.data import load_data, read_arrays, to_output
from monosemantic.dictionary import load
from monosemantic.dictionary.base import DictionaryEstimator
from monosemantic.errors import InputError
from monosemantic.runs import check_new_dir, write_run
from monosemantic.sensing import (METHODS as SOLVERS, Unfolding, check_data, check_dictionary, rel_residual,
                                  unfold_info, warn_unconverged)

METHODS = (*SOLVERS, "sae")


def atoms_of(dictionary) -> tuple[np.ndarray, np.ndarray | None]:
    """(F: [atoms, d] float64, offset: [d] float64 or None) of a fitted estimator or a bare matrix, checked."""
    if isinstance(dictionary, DictionaryEstimator):
        dictionary._fitted()
        F = check_dictionary(dictionary.components_)
        return F, np.asarray(getattr(dictionary, "mean_", np.zeros(F.shape[1])), dtype=np.float64)
    return check_dictionary(dictionary), None


def unfold_with(X, dictionary, method: str = "omp", tol: float = 1e-6, k: int | None = None, alpha: float = 0.01,
                positive: bool = False, progress: bool = False) -> Unfolding:
    """`sensing.unfold_info` on an estimator's atoms and offset (or a bare F); method "sae" runs the
    estimator's own encoder."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    F, offset = atoms_of(dictionary)
    if method != "sae":
        return unfold_info(X, F, method, tol, k, alpha, positive, progress, offset=offset)
    if not isinstance(dictionary, DictionaryEstimator):
        raise InputError("method 'sae' needs a saved dictionary (an SAE directory), not a bare F")
    Xn = check_data(X, F.shape[1])
    C = dictionary.transform(Xn)
    return Unfolding(C, rel_residual(Xn, C.astype(np.float64), F, offset), np.zeros(0, np.int64))


def unfold_codes(X, dictionary, method: str = "omp", tol: float = 1e-6, k: int | None = None, alpha: float = 0.01,
                 positive: bool = False, output: str = "scipy"):
    """`sensing.unfold` on an estimator (or a bare F): sparse codes [samples, atoms]."""
    u = unfold_with(X, dictionary, method, tol, k, alpha, positive)
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


def unfold_run(data: str | Path, dictionary: str | Path, out: str | Path, method: str = "omp",
                  tol: float = 1e-6, k: int | None = None, alpha: float = 0.01, positive: bool = False,
                  overwrite: bool = False, progress: bool = False) -> Path:
    """Unfold a data file against a dictionary and write OUT: codes.safetensors (CSR indptr, indices, values),
    result.json (shape, wall_s = compute only, samples_per_s, unconverged count and indices), config.json."""
    out = check_new_dir(out, overwrite)
    if not tol > 0:
        raise InputError(f"tol must be > 0 (it is relative: ||x - D c|| <= tol ||x||), got {tol}")
    if not alpha > 0:
        raise InputError(f"alpha must be > 0, got {alpha}")
    D = load_dictionary(dictionary)
    X = load_data(data).X
    t = time.perf_counter()
    u = unfold_with(X, D, method, tol, k, alpha, positive, progress)
    wall = time.perf_counter() - t
    C = u.codes
    result = {"shape": list(C.shape), "nnz": int(C.nnz), "l0": float(C.nnz / max(C.shape[0], 1)), "wall_s": wall,
              "samples_per_s": C.shape[0] / wall if wall > 0 else None,
              "max_rel_residual": float(u.rel_residual.max()), "unconverged": int(len(u.unconverged)),
              "unconverged_indices": u.unconverged.tolist()}
    config = {"kind": "unfold", "data": str(data), "dictionary": str(dictionary), "method": method,
              "tol": tol if method == "omp" else None, "k": k if method == "omp" else None,
              "alpha": alpha if method in ("l1", "fista") else None,
              "positive": positive if method in ("l1", "fista") else None}
    codes = {"indptr": torch.from_numpy(C.indptr.astype(np.int64)),
             "indices": torch.from_numpy(C.indices.astype(np.int64)),
             "values": torch.from_numpy(C.data.astype(np.float32))}
    return write_run(out, config, result, {"codes": codes}, overwrite)


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
