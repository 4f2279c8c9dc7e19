"""Ground-truth data sets for dictionary learning and unfolding, and the data-file format.

A data set is activations `X: [samples, d]` made of known sparse features: the true dictionary
`F: [n_features, d]` (unit rows) and the true codes `C: [samples, n_features]` (scipy CSR), so that
X = C @ F (up to the unrepresented features of a toy model). Three sources:

* `synth_uniform`  the benchmark data: n random unit directions, each on independently with
                   p = k / n, magnitude U(0, 1). With the same seed and sizes it draws exactly the data
                   of the peers' synthetic-data recipe (same generator, same order of draws; tests/reference_peers.py).
* `synth_sharkey`  Sharkey, Braun & Millidge (2022): 512 features in 256 dims, frequencies falling as
                   decay**i scaled so that about k are on, optionally correlated through a Gaussian copula
                   (marginal frequencies unchanged).
* `toy_activations` h = W x of a trained toy model (a `toy train` run directory); the truth keeps the
                   represented columns of W (norm > 0.5), normalised, and codes x_i * ||W_i||.

Files (`save_data` / `load_data`): `.npz` or `.safetensors` with `X`, and optionally `F`, `indptr`,
`indices`, `values` (the CSR pieces of C) and a JSON `meta`; `.npy` holds X alone (and can be
memory-mapped). Nothing is ever unpickled. The peers' own names (`D`, `codes_indptr`, `codes_indices`,
`codes_data`) are read too.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import ndtr

from safetensors.numpy import save_file

from monosemantic.errors import InputError
from monosemantic.runs import atomic_file, check_memory

CHUNK = 50_000  # samples generated per chunk (the peers' chunk: with it the section-5 draws match theirs)
CHUNK_ELEMENTS = 1 << 25  # ... but never more than this many dense [chunk, n_features] entries at once


@dataclass
class Data:
    """X: [samples, d] float32; F: [n_features, d] unit rows or None; codes: CSR [samples, n_features] or None."""

    X: np.ndarray
    F: np.ndarray | None = None
    codes: sp.csr_matrix | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)

    def rows(self, start: int, stop: int) -> Data:
        """Samples start..stop-1 (a view of X), with their codes."""
        codes = self.codes[start:stop] if self.codes is not None else None
        return Data(self.X[start:stop], self.F, codes, dict(self.meta))


def split(data: Data, n_eval: int = 10_000) -> tuple[Data, Data]:
    """(train, held-out): the LAST n_eval samples are held out, as the peers do."""
    if not 0 < n_eval < len(data):
        raise InputError(f"held-out size must lie in (0, {len(data)}), got {n_eval}")
    return data.rows(0, len(data) - n_eval), data.rows(len(data) - n_eval, len(data))


def random_dictionary(rng: np.random.Generator, n_features: int, d: int) -> np.ndarray:
    """F: [n_features, d] Gaussian-random unit rows (float32)."""
    F = rng.standard_normal((n_features, d)).astype(np.float32)
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    return F


def _check_sizes(n_features: int, d: int, k: float, samples: int, seed: int = 0) -> None:
    if n_features < 1 or d < 1 or samples < 1:
        raise InputError(f"n_features, d and samples must be positive, got {n_features}, {d}, {samples}")
    if not 0 < k <= n_features:
        raise InputError(f"k (expected active features) must lie in (0, n_features={n_features}], got {k}")
    check_seed(seed)
    chunk = max(1, min(CHUNK, CHUNK_ELEMENTS // n_features))
    # X, the codes (CSR, built twice: chunks and their stack), F, and a chunk's dense draws
    need = 4 * samples * d + 2 * 12 * samples * k + 4 * n_features * d + 16 * min(chunk, samples) * n_features
    check_memory(need, f"{samples} samples of {n_features} features in d={d}", "lower --samples, --n-features or --d")


def check_seed(seed: int) -> None:
    """Seeds are 64-bit (torch's and numpy's generators), non-negative."""
    if not 0 <= seed < 2**63:
        raise InputError(f"seed must lie in [0, 2**63), got {seed}")


def _draw(rng: np.random.Generator, F: np.ndarray, samples: int, on_fn) -> tuple[np.ndarray, sp.csr_matrix]:
    """X = C @ F chunk by chunk; on_fn(rng, b) -> bool [b, n_features]; magnitudes U(0, 1)."""
    n_features, d = F.shape
    X = np.empty((samples, d), dtype=np.float32)
    parts = []
    chunk = max(1, min(CHUNK, CHUNK_ELEMENTS // n_features))
    for s in range(0, samples, chunk):
        e = min(samples, s + chunk)
        on = on_fn(rng, e - s)  # [b, n_features]
        mag = rng.random((e - s, n_features), dtype=np.float32)
        codes = np.where(on, mag, np.float32(0))  # [b, n_features]
        X[s:e] = codes @ F
        parts.append(sp.csr_matrix(codes))
    return X, sp.vstack(parts, format="csr")


def _meta_of(X: np.ndarray, codes: sp.csr_matrix, **kw) -> dict:
    l0 = np.diff(codes.indptr)
    return {**kw, "samples": len(X), "d": X.shape[1], "n_features": codes.shape[1],
            "l0_mean": float(l0.mean()), "l0_std": float(l0.std()), "frac_zero_samples": float((l0 == 0).mean())}


def synth_uniform(n_features: int = 512, d: int = 128, k: float = 5, samples: int = 200_000, seed: int = 0) -> Data:
    """The section-5 data: every feature on with p = k / n_features, magnitude U(0, 1)."""
    _check_sizes(n_features, d, k, samples, seed)
    rng = np.random.default_rng(seed)
    F = random_dictionary(rng, n_features, d)
    p = k / n_features
    X, codes = _draw(rng, F, samples, lambda r, b: r.random((b, n_features)) < p)
    return Data(X, F, codes, _meta_of(X, codes, kind="uniform", k=k, p=p, seed=seed))


def sharkey_probabilities(n_features: int, k: float, decay: float) -> np.ndarray:
    """p_i proportional to decay**i, scaled so that sum p_i = k (each capped at 1): [n_features]."""
    if not 0 < decay <= 1:
        raise InputError(f"frequency decay must lie in (0, 1], got {decay}")
    w = decay ** np.arange(n_features, dtype=np.float64)
    p = k * w / w.sum()
    if p[0] > 1:
        raise InputError(f"k={k} with decay {decay} needs feature probabilities above 1; lower k or raise decay")
    return p


def synth_sharkey(
    n_features: int = 512,
    d: int = 256,
    k: float = 5,
    samples: int = 200_000,
    decay: float = 0.99,
    correlation: float = 0.0,
    factors: int = 16,
    seed: int = 0,
) -> Data:
    """Sharkey et al.'s setting: feature i on with p_i ~ decay**i (about k on), magnitude U(0, 1).

    correlation > 0 couples the on/off events through a Gaussian copula: z = sqrt(c) L g + sqrt(1 - c) e
    with L: [n_features, factors] random unit rows, g and e standard normal; feature i is on when
    Phi(z_i) < p_i. So corr(z_i, z_j) = c * cos(L_i, L_j) and every p_i is exact.
    """
    _check_sizes(n_features, d, k, samples, seed)
    if not 0 <= correlation < 1:
        raise InputError(f"correlation must lie in [0, 1), got {correlation}")
    if factors < 1:
        raise InputError(f"factors must be positive, got {factors}")
    rng = np.random.default_rng(seed)
    F = random_dictionary(rng, n_features, d)
    p = sharkey_probabilities(n_features, k, decay)
    L = random_dictionary(rng, n_features, factors).astype(np.float64)  # [n_features, factors]

    def on_fn(r: np.random.Generator, b: int) -> np.ndarray:
        if correlation == 0:
            return r.random((b, n_features)) < p
        z = np.sqrt(correlation) * (r.standard_normal((b, factors)) @ L.T)
        z += np.sqrt(1 - correlation) * r.standard_normal((b, n_features))
        return ndtr(z) < p

    X, codes = _draw(rng, F, samples, on_fn)
    return Data(X, F, codes, _meta_of(X, codes, kind="sharkey", k=k, decay=decay, correlation=correlation,
                                      factors=factors, seed=seed))


def toy_activations(run_dir: str | Path, instance: int = 0, samples: int = 100_000, seed: int = 0) -> Data:
    """Hidden activations h = W x of one instance of a toy run directory.

    x is drawn as the model was trained (its sparsity and feature sets, `FeatureSampler`); the truth is the
    represented columns of W (norm > 0.5) normalised, with codes x_i * ||W_i|| so that X = C @ F plus the
    small contribution of the unrepresented features.
    """
    import torch

    from monosemantic.toy.sampler import FeatureSampler, probabilities
    from monosemantic.measures import REPRESENTED

    config, W = read_toy_run(run_dir)
    if not 0 <= instance < W.shape[0]:
        raise InputError(f"instance must lie in [0, {W.shape[0]}), got {instance}")
    if samples < 1:
        raise InputError(f"samples must be positive, got {samples}")
    check_seed(seed)
    check_memory(4 * samples * W.shape[1] + 2 * 12 * samples * W.shape[2], f"{samples} samples of the toy model",
                 "lower --samples")
    W = W[instance].double()  # [m, n]
    m, n = W.shape
    sparsity = config.get("sparsity")
    if not isinstance(sparsity, list):
        raise InputError(f"{run_dir}/config.json has no sparsity list: give a `toy train` run directory")
    sparsity = sparsity[instance]
    for key, low in (("correlated_sets", 0), ("anticorrelated_sets", 0), ("set_size", 2)):
        v = config.get(key, low)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise InputError(f"{run_dir}/config.json: {key} must be an integer >= {low}, got {v!r}")
    sampler = FeatureSampler(probabilities(sparsity, n), seed=seed, signed=config.get("model") == "abs",
                             correlated_sets=config.get("correlated_sets", 0),
                             anticorrelated_sets=config.get("anticorrelated_sets", 0),
                             set_size=config.get("set_size", 2))
    if not (W.norm(dim=0) > REPRESENTED).any():
        raise InputError(f"{run_dir}: instance {instance} represents no feature (every ||W_i|| <= {REPRESENTED})")
    X, F, codes, keep = activations_of(W, sampler, samples)
    return Data(X, F, codes, _meta_of(X, codes, kind="toy", run_dir=str(run_dir), instance=instance,
                                      sparsity=sparsity, represented=keep.tolist(), n=n, m=m, seed=seed))


def activations_of(W, sampler, samples: int) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, "torch.Tensor"]:
    """X = h = W x: [samples, m] for x from `sampler` (one instance), with the truth: F: [represented, m] the
    represented columns of W: [m, n] (norm > 0.5) normalised, codes x_i * ||W_i||, and the represented indices."""
    from monosemantic.measures import REPRESENTED

    W = W.double()
    m, n = W.shape
    norms = W.norm(dim=0)  # [n]
    keep = (norms > REPRESENTED).nonzero().flatten()
    F = (W[:, keep] / norms[keep]).T.float().numpy()  # [n_represented, m]
    X = np.empty((samples, m), dtype=np.float32)
    parts = []
    for s in range(0, samples, CHUNK):
        e = min(samples, s + CHUNK)
        x = sampler.sample(e - s)[:, 0, :].double()  # [b, n]
        X[s:e] = (x @ W.T).float().numpy()
        parts.append(sp.csr_matrix((x[:, keep] * norms[keep]).float().numpy()))
    return X, F, sp.vstack(parts, format="csr"), keep


def read_toy_run(run_dir: str | Path) -> tuple[dict, torch.Tensor]:
    """(config, W: [instances, m, n] float32) of a toy run directory, its weights checked against its config.json:
    the model kind, W's and b's shapes (and the abs model's W2), float32, finite."""
    from monosemantic.runs import read_run

    config, _, tensors = read_run(run_dir)
    return config, check_toy_run(run_dir, config, tensors)


def check_toy_run(run_dir: str | Path, config: dict, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """W: [instances, m, n] of a toy run's tensors, checked against its config (see `read_toy_run`)."""
    where = f"{run_dir}/model.safetensors"
    if not isinstance(config, dict):
        raise InputError(f"{run_dir}/config.json must be a JSON object")
    model, n, m = config.get("model"), config.get("n"), config.get("m")
    if model not in ("linear", "relu-output", "relu-hidden", "abs"):
        raise InputError(f"{run_dir}/config.json: unknown toy model {model!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, m)):
        raise InputError(f"{run_dir}/config.json: n and m must be positive integers, got n={n!r}, m={m!r}")
    W = tensors.get("W")
    if W is None or W.ndim != 3:
        raise InputError(f"{where} has no W: [instances, m, n]")
    sparsity = config.get("sparsity")
    instances = len(sparsity) if isinstance(sparsity, list) else W.shape[0]
    want = {"W": (instances, m, n), "b": (instances, n)}
    if model == "abs":
        want["W2"] = (instances, n, m)
    for name, shape in want.items():
        t = tensors.get(name)
        if t is None:
            raise InputError(f"{where} has no {name}: {list(shape)} (config.json says a {model} model)")
        if tuple(t.shape) != shape:
            raise InputError(f"{where}: {name} has shape {list(t.shape)} but config.json (n={n}, m={m}, "
                             f"{instances} instances) wants {list(shape)}")
        if t.dtype != torch.float32:
            raise InputError(f"{where}: {name} is {t.dtype}, want float32")
        if not torch.isfinite(t).all():
            raise InputError(f"{where}: {name} has NaN or Inf")
    if isinstance(sparsity, list) and not all(isinstance(s, (int, float)) and 0 <= s < 1 for s in sparsity):
        raise InputError(f"{run_dir}/config.json: sparsity must be a list of numbers in [0, 1)")
    return W


# ---------------------------------------------------------------- files


def _csr_parts(codes: sp.csr_matrix) -> dict[str, np.ndarray]:
    codes = sp.csr_matrix(codes)
    codes.sum_duplicates()
    return {"indptr": codes.indptr.astype(np.int64), "indices": codes.indices.astype(np.int32),
            "values": codes.data.astype(np.float32)}


def save_data(path: str | Path, data: Data) -> Path:
    """Write `data` atomically as .npz, .safetensors (X, F, indptr, indices, values, meta) or .npy (X alone)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy", ".safetensors"):
        raise InputError(f"data file must end in .npz, .npy or .safetensors, got {path.name}")
    if not path.resolve().parent.is_dir():
        raise InputError(f"directory does not exist: {path.resolve().parent}")
    arrays = {"X": np.ascontiguousarray(data.X, dtype=np.float32)}
    if data.F is not None:
        arrays["F"] = np.ascontiguousarray(data.F, dtype=np.float32)
    if data.codes is not None:
        arrays.update(_csr_parts(data.codes))
    meta = json.dumps(data.meta)

    def write(tmp: Path) -> None:
        if suffix == ".npy":
            np.save(tmp, arrays["X"])
        elif suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, **arrays, meta=np.array(meta))  # a unicode array: loads without pickle
        else:
            save_file(arrays, str(tmp), metadata={"meta": meta})
    return atomic_file(path, write)


# the peers' names (tests/reference_peers.py) -> ours
_ALIASES = {"D": "F", "codes_indptr": "indptr", "codes_indices": "indices", "codes_data": "values"}


def read_arrays(path: Path, mmap: bool) -> tuple[dict[str, np.ndarray], dict]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":  # mapped first: a header claiming more data than the file holds is refused unread
            X = np.load(path, mmap_mode="r", allow_pickle=False)
            return {"X": X if mmap else np.array(X)}, {}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {_ALIASES.get(k, k): z[k] for k in z.files}
            meta = arrays.pop("meta", None)
            return arrays, json.loads(str(meta)) if meta is not None else {}
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as f:
                arrays = {_ALIASES.get(k, k): f.get_tensor(k) for k in f.keys()}
                meta = (f.metadata() or {}).get("meta")
            return arrays, json.loads(meta) if meta else {}
    except MemoryError:
        raise InputError(f"data file {path} claims an array larger than memory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, KeyError) as e:
        raise InputError(f"corrupt or unreadable data file {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except Exception as e:  # safetensors raises its own error type for a damaged header
        if type(e).__name__ == "SafetensorError":
            raise InputError(f"corrupt safetensors data file {path}: {e}") from None
        raise
    raise InputError(f"data file must end in .npz, .npy or .safetensors, got {path.name}")


def check_finite(name: str, a: np.ndarray, chunk: int = 1 << 16) -> None:
    """InputError when a (possibly memory-mapped) array holds NaN or Inf; checked in chunks of rows."""
    for s in range(0, max(len(a), 1), chunk):
        block = np.asarray(a[s:s + chunk])
        if not np.isfinite(block).all():
            bad = int(np.argwhere(~np.isfinite(block))[0][0]) + s
            raise InputError(f"{name} has NaN or Inf (first in row {bad})")


def check_matrix(name: str, a) -> None:
    """InputError unless a is a real-valued [samples, d] array with no NaN/Inf and no empty axis."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise InputError(f"{name} must be a numeric array, got {getattr(a, 'dtype', type(a))}")
    if a.ndim != 2:
        raise InputError(f"{name} must be [samples, d], got shape {list(a.shape)}")
    if 0 in a.shape:
        raise InputError(f"{name} is empty (shape {list(a.shape)})")
    check_finite(name, a)


def load_data(path: str | Path, mmap: bool = False) -> Data:
    """Read a data file, validating every array. `mmap` memory-maps a .npy X (no copy into memory)."""
    path = Path(path)
    if path.is_dir():  # an activation store (monosemantic.real.store): its rows, read from the shards on demand
        from monosemantic.real.store import Store, is_store

        if is_store(path):
            store = Store(path)
            return Data(store.X, meta={k: store.manifest[k] for k in ("model", "site", "corpus", "tokens")})
    if not path.is_file():
        raise InputError(f"missing data file: {path}")
    arrays, meta = read_arrays(path, mmap)
    where = f"{path.name}:"
    if "X" not in arrays:
        raise InputError(f"{path} has no array X: [samples, d] (found {sorted(arrays) or 'nothing'})")
    X = arrays["X"]
    check_matrix(f"{where} X", X)
    if X.dtype != np.float32 and not mmap:
        X = X.astype(np.float32)
    n, d = X.shape
    F = arrays.get("F")
    if F is not None:
        check_matrix(f"{where} F", F)
        if F.shape[1] != d:
            raise InputError(f"{where} F is {list(F.shape)} but X has d={d}")
        norms = np.linalg.norm(F.astype(np.float64), axis=1)
        if (norms == 0).any():
            raise InputError(f"{where} F has a zero row (feature {int(np.argmax(norms == 0))})")
        F = (F / norms[:, None]).astype(np.float32)
    codes = None
    parts = [k for k in ("indptr", "indices", "values") if k in arrays]
    if parts and len(parts) < 3:
        missing = sorted({"indptr", "indices", "values"} - set(parts))
        raise InputError(f"{where} true codes need indptr, indices and values; missing {', '.join(missing)}")
    if parts:
        if F is None:
            raise InputError(f"{where} true codes given without the true dictionary F")
        codes = _check_csr(where, arrays["indptr"], arrays["indices"], arrays["values"], n, len(F))
        if meta.get("kind") != "toy":  # a toy model's X also holds its unrepresented features
            _check_consistent(where, X, arrays["F"], codes)
    return Data(X, F, codes, meta)


def _check_consistent(where: str, X: np.ndarray, F: np.ndarray, codes: sp.csr_matrix, rows: int = 2048) -> None:
    """InputError unless X = C @ F (relative error under 1e-3 on up to `rows` evenly spaced samples):
    a truth file whose codes do not make its X would score every dictionary against the wrong answer."""
    idx = np.unique(np.linspace(0, len(X) - 1, min(len(X), rows)).astype(np.int64))
    x = np.asarray(X[idx], dtype=np.float64)
    err = np.linalg.norm(x - codes[idx].astype(np.float64) @ F.astype(np.float64))
    if err > 1e-3 * max(np.linalg.norm(x), 1e-12):
        raise InputError(f"{where} X is not codes @ F (relative error {err / max(np.linalg.norm(x), 1e-12):.3g} "
                         f"on {len(idx)} samples): the file's truth does not match its data")


def _check_csr(where: str, indptr, indices, values, n: int, n_features: int) -> sp.csr_matrix:
    for name, a in (("indptr", indptr), ("indices", indices), ("values", values)):
        if a.ndim != 1:
            raise InputError(f"{where} {name} must be one-dimensional, got shape {list(a.shape)}")
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise InputError(f"{where} indptr and indices must be integers")
    if len(indptr) != n + 1:
        raise InputError(f"{where} indptr has {len(indptr)} entries, want samples + 1 = {n + 1}")
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices) or len(values) != len(indices):
        raise InputError(f"{where} indptr/indices/values are not a valid CSR matrix")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_features):
        raise InputError(f"{where} indices must lie in [0, {n_features}) (the rows of F)")
    check_finite(f"{where} values", values)
    return sp.csr_matrix((values.astype(np.float32), indices, indptr), shape=(n, n_features))


# ---------------------------------------------------------------- one entry point for the CLI


def synth(kind: str = "uniform", n_features: int | None = None, d: int | None = None, k: float = 5,
          samples: int = 200_000, seed: int = 0, decay: float = 0.99, correlation: float = 0.0,
          run_dir: str | Path | None = None, instance: int = 0) -> Data:
    """Draw a data set by kind: 'uniform' (section 5: 512 x 128), 'sharkey' (512 x 256) or 'toy' (run_dir)."""
    if kind == "uniform":
        return synth_uniform(n_features or 512, d or 128, k, samples, seed)
    if kind == "sharkey":
        return synth_sharkey(n_features or 512, d or 256, k, samples, decay, correlation, seed=seed)
    if kind == "toy":
        if run_dir is None:
            raise InputError("kind 'toy' needs a toy run directory (--run)")
        return toy_activations(run_dir, instance, samples, seed)
    raise InputError(f"unknown data kind {kind!r} (uniform, sharkey, toy)")


def as_matrix(X, name: str = "X") -> torch.Tensor | np.ndarray:
    """A [samples, d] float array (torch tensor, or a numpy array/memmap left on disk), checked for NaN/Inf."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        if X.layout != torch.strided:
            X = X.to_dense()
        if X.ndim != 2 or 0 in X.shape:
            raise InputError(f"{name} must be [samples, d], got shape {list(X.shape)}")
        if not torch.isfinite(X).all():
            raise InputError(f"{name} has NaN or Inf")
        return X.float()
    if hasattr(X, "toarray"):  # scipy sparse
        X = X.toarray()
    X = X if isinstance(X, np.memmap) else np.asarray(X)
    check_matrix(name, X)
    if isinstance(X, np.memmap):
        return X
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


def to_output(C: sp.csr_matrix, output: str):
    """scipy CSR as is, or as a torch sparse CSR tensor (output='torch')."""
    if output == "scipy":
        return C
    if output == "torch":
        with warnings.catch_warnings():  # torch flags its sparse CSR support as beta on every construction
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.from_numpy(C.indptr).long(), torch.from_numpy(C.indices).long(),
                                           torch.from_numpy(C.data), size=C.shape)
    raise InputError(f"output must be 'scipy' or 'torch', got {output!r}")
