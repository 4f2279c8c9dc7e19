"""Feature enumeration and the semantic dictionary: what every atom of a dictionary is, and what one activation
is made of.

    list_features(dictionary, X, truth_F=None, truth_codes=None, top=5)  -> [one dict per atom]
    describe_sample(dictionary, X, i, truth_F=None, truth_codes=None)    -> one activation as weighted atoms

`dictionary` is a fitted estimator of `monosemantic.dictionary` (codes from its own encoder, `transform`; its
`mean_`, an SAE's b_dec, is part of every reconstruction) or a bare F: [atoms, d] (codes by OMP with relative
tolerance 1e-6, `sensing.unfold_info`). X: [samples, d] may be memory-mapped: it is read in chunks, and per atom
only a running count, sum and maximum of its codes and a running top-k of its samples are kept (merged chunk by
chunk with torch.topk), so no [samples, atoms] matrix of the whole data is ever built.

An atom *fires* on a sample when its code there is non-zero. Activations are signed codes: "top activating" means
the largest codes (for SAEs and non-negative codes, the strongest). With the truth (F: [n_features, d] unit rows,
codes CSR [samples, n_features], as `data.load_data` reads them) each atom gets its nearest true feature by
signed cosine (|cos| picks it for sign-free estimators such as PCA; the cosine reported keeps its sign), as
`recovery.py` scores dictionaries.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import NonNegativeInt, PositiveInt

from monosemantic.errors import InputError
from monosemantic.config import SORTS, FeaturesConfig
from monosemantic.progress import track
from monosemantic.runs import check_memory
from monosemantic.dictionary.base import DictionaryEstimator
from monosemantic.recovery import THRESHOLD, unit_rows
from monosemantic.sensing import unfold_info
from monosemantic.experiments.unfolding import atoms_of, load_dictionary

CELLS = 1 << 22  # at most this many dense [chunk, atoms] codes at once (16 MiB of float32)


def _coder(dictionary):
    """(encode: X chunk [b, d] -> (CSR codes [b, atoms], samples OMP left above its tolerance), F: [atoms, d]
    float64, mean: [d] float64, sign_free)."""
    F, mean = atoms_of(dictionary)  # checks shape, NaN and zero atoms
    if isinstance(dictionary, DictionaryEstimator):
        return (lambda x: (dictionary.transform(x), 0)), F, mean, bool(dictionary.sign_free)

    def encode(x):
        u = unfold_info(x, F, "omp")
        return u.codes, len(u.unconverged)
    return encode, F, np.zeros(F.shape[1]), False


def _check_truth(X, F, truth_F, truth_codes) -> None:
    if truth_F is not None and truth_F.shape[1] != F.shape[1]:
        raise InputError(f"true features have d={truth_F.shape[1]} but the dictionary has d={F.shape[1]}")
    if truth_codes is not None and (truth_F is None or truth_codes.shape != (len(X), len(truth_F))):
        want = f"[{len(X)}, {len(truth_F)}]" if truth_F is not None else "true features F beside them"
        raise InputError(f"true codes are {list(truth_codes.shape)}, want {want}")


def _check_data(X, F) -> None:
    if getattr(X, "ndim", None) != 2 or 0 in X.shape:
        raise InputError(f"X must be [samples, d], got shape {list(getattr(X, 'shape', []))}")
    if X.shape[1] != F.shape[1]:
        raise InputError(f"data have d={X.shape[1]} but the dictionary's atoms have d={F.shape[1]}")


def nearest_features(F, truth_F, sign_free: bool = False, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each atom's nearest true feature and their signed cosine: ([atoms] int, [atoms] float), atoms in blocks."""
    T = unit_rows(truth_F)  # [n_features, d]
    near, cos = np.empty(len(F), np.int64), np.empty(len(F))
    for s in range(0, len(F), block):
        c = T @ unit_rows(F[s:s + block]).T  # [n_features, block]
        near[s:s + block] = (np.abs(c) if sign_free else c).argmax(0)
        cos[s:s + block] = c[near[s:s + block], np.arange(c.shape[1])]
    return near, cos


def list_features(dictionary, X, truth_F=None, truth_codes=None, top: int = 5, chunk: int = 4096,
                  progress: bool = False) -> list[dict]:
    """One dict per atom, in atom order (JSON-ready; None where a figure does not exist):

    atom; count and frequency (share of samples where its code is non-zero); mean_activation (mean code over the
    samples where it fires) and max_activation; norm (of its decoder row); with truth_F: nearest_feature and its
    signed cosine; with truth_codes too: true_frequency of that feature; top_samples and top_values: the indices
    and codes of its `top` largest activations, largest first (fewer when it fires on fewer samples).
    """
    if top < 1:
        raise InputError(f"top must be a positive number of samples, got {top}")
    if chunk < 1:
        raise InputError(f"chunk must be positive, got {chunk}")
    encode, F, _, sign_free = _coder(dictionary)
    _check_data(X, F)
    _check_truth(X, F, truth_F, truth_codes)
    n, n_atoms = len(X), len(F)
    top = min(top, n)  # no atom has more activating samples than there are samples
    check_memory(2 * 8 * n_atoms * (top + min(chunk, n)), f"the top {top} samples of {n_atoms} atoms",
                 "lower --top")
    chunk = max(1, min(chunk, CELLS // n_atoms))
    count = torch.zeros(n_atoms, dtype=torch.long)
    total = torch.zeros(n_atoms, dtype=torch.float64)
    best_v = torch.full((n_atoms, top), -torch.inf)  # running top-k codes: [atoms, top]
    best_i = torch.full((n_atoms, top), -1, dtype=torch.long)  # their sample indices: [atoms, top]
    unconverged = 0
    for s in track(range(0, n, chunk), "features", progress):
        C, bad = encode(X[s:s + chunk])
        unconverged += bad
        c = torch.from_numpy(C.toarray())  # [b, atoms], one chunk only
        on = c != 0
        count += on.sum(0)
        total += c.sum(0, dtype=torch.float64)
        v, j = c.masked_fill(~on, -torch.inf).T.topk(min(top, len(c)), dim=1)  # [atoms, <=top]
        v, k = torch.cat([best_v, v], 1).topk(top, dim=1)
        best_v, best_i = v, torch.cat([best_i, j + s], 1).gather(1, k)
    if unconverged:
        warnings.warn(f"{unconverged} sample(s) did not reach OMP's relative residual 1e-6", RuntimeWarning,
                      stacklevel=2)
    norms = np.linalg.norm(F, axis=1)
    near, cos = nearest_features(F, truth_F, sign_free) if truth_F is not None else (None, None)
    true_freq = np.diff(sp.csc_matrix(truth_codes != 0).indptr) / n if truth_codes is not None else None
    rows = []
    for a in range(n_atoms):
        k = int(count[a])
        fired = best_v[a] > -torch.inf
        rows.append({
            "atom": a, "count": k, "frequency": k / n,
            "mean_activation": float(total[a]) / k if k else None,
            "max_activation": float(best_v[a, 0]) if k else None,
            "norm": float(norms[a]),
            "nearest_feature": int(near[a]) if near is not None else None,
            "cosine": float(cos[a]) if cos is not None else None,
            "true_frequency": float(true_freq[near[a]]) if true_freq is not None else None,
            "top_samples": best_i[a][fired].tolist(), "top_values": best_v[a][fired].tolist()})
    return rows


def describe_sample(dictionary, X, i: int, truth_F=None, truth_codes=None) -> dict:
    """Sample i as a weighted list of atoms, heaviest first.

    For each active atom j (code c_j, decoder row F_j): weight = |c_j| ||F_j||, the length of its contribution
    c_j F_j in activation space; share = (c_j F_j . z) / ||z||^2 with z = sum_j c_j F_j (the reconstruction
    without the dictionary's mean), its part of the reconstruction along z: the shares sum to 1 and are negative
    for an atom that cancels others. rel_error = ||x - x_hat|| / ||x|| (None for x = 0), x_hat = z + mean.
    With truth_F each atom carries its nearest true feature and cosine; with truth_codes `true_features` lists
    the sample's true active features and values, largest first.
    """
    encode, F, mean, sign_free = _coder(dictionary)
    _check_data(X, F)
    _check_truth(X, F, truth_F, truth_codes)
    if not 0 <= i < len(X):
        raise InputError(f"sample must lie in [0, {len(X)}), got {i}")
    x = np.asarray(X[i:i + 1], dtype=np.float64)  # [1, d]
    C, _ = encode(x)
    atoms, c = C.indices, C.data.astype(np.float64)  # [active]
    parts = c[:, None] * F[atoms]  # [active, d]
    z = parts.sum(0)  # [d]
    zz = float(z @ z)
    weight = np.abs(c) * np.linalg.norm(F[atoms], axis=1)
    share = parts @ z / zz if zz > 0 else np.zeros(len(c))
    near, cos = nearest_features(F[atoms], truth_F, sign_free) if truth_F is not None and len(atoms) else (None, None)
    order = np.argsort(-weight, kind="stable")
    feats = [{"atom": int(atoms[j]), "code": float(c[j]), "weight": float(weight[j]), "share": float(share[j]),
              "nearest_feature": int(near[j]) if near is not None else None,
              "cosine": float(cos[j]) if cos is not None else None} for j in order]
    nx = float(np.linalg.norm(x))
    out = {"sample": int(i), "norm": nx, "active": len(feats),
           "rel_error": float(np.linalg.norm(x[0] - z - mean)) / nx if nx > 0 else None, "features": feats,
           "true_features": None}
    if truth_codes is not None:
        row = sp.csr_matrix(truth_codes[i])
        order = np.argsort(-row.data, kind="stable")
        out["true_features"] = [{"feature": int(row.indices[j]), "value": float(row.data[j])} for j in order
                                if row.data[j] != 0]
    return out


# ---------------------------------------------------------------- files and run directories (`monosemantic features`)


def open_inputs(dictionary: str | Path, data: str | Path | None = None):
    """(dictionary: an estimator or F, Data, the data path used) for a saved dictionary directory or a file holding
    F, and a data file (default: the one its config.json records, as `sae train` writes it)."""
    from monosemantic.data import load_data
    from monosemantic.runs import read_json

    dictionary = Path(dictionary)
    D = load_dictionary(dictionary)
    if data is None:
        recorded = dictionary / "config.json"
        data = read_json(recorded).get("data") if recorded.is_file() else None
        if not data:
            raise InputError(f"{dictionary} records no data file (no config.json naming one); pass --data FILE")
        if not Path(data).is_file():
            raise InputError(f"the data file recorded in {recorded} is missing: {data}; pass --data FILE")
    d = atoms_of(D)[0].shape[1]
    data_set = load_data(data, mmap=str(data).endswith(".npy"))
    if data_set.X.shape[1] != d:
        raise InputError(f"{data} has d={data_set.X.shape[1]} but the dictionary {dictionary} has d={d}")
    return D, data_set, str(data)


def features_list_run(cfg: FeaturesConfig, out: str | Path | None = None, overwrite: bool = False,
                progress: bool = False) -> tuple[list[dict], dict]:
    """(rows, result) of `list_features` on cfg's dictionary and data; with `out`, a run directory: config.json,
    result.json (samples, atoms, dead, l0, wall_s = compute only, samples_per_s, ...) and features.json (rows)."""
    from monosemantic.runs import check_new_dir, write_run

    if out is not None:
        check_new_dir(out, overwrite)
    D, data, path = open_inputs(cfg.dictionary, cfg.data)
    t = time.perf_counter()
    rows = list_features(D, data.X, data.F, data.codes, cfg.top, progress=progress)
    wall = time.perf_counter() - t
    n = len(data.X)
    result = {"samples": n, "atoms": len(rows), "wall_s": wall, "samples_per_s": n / wall if wall > 0 else None,
              "dead": sum(r["count"] == 0 for r in rows), "l0": sum(r["count"] for r in rows) / n,
              "truth": data.F is not None}
    if data.F is not None:
        result[f"atoms_cosine_above_{THRESHOLD}"] = sum(r["cosine"] > THRESHOLD for r in rows) / len(rows)
    if out is not None:
        config = {"kind": "features", **cfg.model_dump(exclude={"sample"}), "data": path}
        write_run(out, config, result, {}, overwrite, extra_json={"features.json": rows})
    return rows, result


def features_describe_run(cfg: FeaturesConfig, out: str | Path | None = None, overwrite: bool = False) -> dict:
    """`describe_sample` of cfg.sample; with `out`, a run directory: config.json and result.json (the description)."""
    from monosemantic.runs import check_new_dir, write_run

    if out is not None:
        check_new_dir(out, overwrite)
    D, data, path = open_inputs(cfg.dictionary, cfg.data)
    t = time.perf_counter()
    desc = describe_sample(D, data.X, cfg.sample, data.F, data.codes)
    desc["wall_s"] = time.perf_counter() - t
    if out is not None:
        config = {"kind": "features-describe", **cfg.model_dump(include={"dictionary", "sample"}), "data": path}
        write_run(out, config, desc, {}, overwrite)
    return desc


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def format_features(rows: list[dict], sort: str = "frequency", limit: int = 20) -> list[str]:
    """The table of `features list`: a header and one line per atom (the first `limit` by `sort`; 0: all)."""
    keys = {"frequency": lambda r: -r["frequency"], "atom": lambda r: r["atom"],
            "max": lambda r: -(r["max_activation"] if r["max_activation"] is not None else -np.inf),
            "cosine": lambda r: -(r["cosine"] if r["cosine"] is not None else -np.inf)}
    if sort not in keys:
        raise InputError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    shown = sorted(rows, key=keys[sort])[:limit or None]  # stable: ties stay in atom order
    lines = [f"{'atom':>6} {'freq':>8} {'mean':>8} {'max':>8} {'norm':>6} {'true':>6} {'cos':>6}  top samples"]
    for r in shown:
        lines.append(f"{r['atom']:>6} {r['frequency']:>8.5f} {_num(r['mean_activation'], '>8.4f')} "
                     f"{_num(r['max_activation'], '>8.4f')} {r['norm']:>6.3f} {_num(r['nearest_feature'], '>6')} "
                     f"{_num(r['cosine'], '>6.3f')}  {' '.join(map(str, r['top_samples']))}")
    if len(shown) < len(rows):
        lines.append(f"... {len(rows) - len(shown)} more atoms (--limit 0 shows all)")
    return lines


def format_description(desc: dict) -> list[str]:
    """The text of `features describe`: a summary line, one line per active atom, the true features."""
    err = _num(desc["rel_error"], ".4g")
    lines = [f"sample {desc['sample']}: ||x|| {desc['norm']:.4g}, {desc['active']} active atoms, "
             f"relative reconstruction error {err}",
             f"{'atom':>6} {'code':>9} {'weight':>8} {'share':>7} {'true':>6} {'cos':>6}"]
    for f in desc["features"]:
        lines.append(f"{f['atom']:>6} {f['code']:>9.4f} {f['weight']:>8.4f} {f['share']:>7.3f} "
                     f"{_num(f['nearest_feature'], '>6')} {_num(f['cosine'], '>6.3f')}")
    if desc["true_features"] is not None:
        true = ", ".join(f"{t['feature']} ({t['value']:.4f})" for t in desc["true_features"]) or "none"
        lines.append(f"true active features: {true}")
    return lines
