"""Classical dictionary learners behind the SAE's API: scikit-learn's MiniBatchDictionaryLearning, and PCA and
FastICA as floors (at most d atoms, and sign-free: score them with `absolute=True`, see `sign_free`).

All fit in float64: on float32 input sklearn's coordinate-descent lasso often cannot reach its duality-gap
tolerance, runs to max_iter and floods ConvergenceWarnings (~4x slower per batch).
Saved as a directory: `cfg.json` and `dictionary.safetensors` (components: [n_atoms, d], mean: [d]).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from monosemantic.errors import InputError
from monosemantic.data import check_matrix
from monosemantic.dictionary.base import DICT_FILE, DictionaryEstimator
from monosemantic.dictionary.batches import Batches


def _f64(X) -> np.ndarray:
    """X: [samples, d] as float64 numpy (float64 input keeps its precision), checked like `as_matrix`."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        X = (X if X.layout == torch.strided else X.to_dense()).double().numpy()
    elif hasattr(X, "toarray"):  # scipy sparse
        X = X.toarray()
    X = np.asarray(X)
    check_matrix("X", X)
    return np.asarray(X, dtype=np.float64)


class MiniBatchDictionary(DictionaryEstimator):
    """sklearn MiniBatchDictionaryLearning (cd, non-negative codes, lasso objective 0.5||x - cD||^2 + alpha||c||_1).

    samples: training samples seen by fit (in batches of `batch`). transform: lasso_cd with the same alpha.
    """

    kind = "minibatch-dictionary-learning"

    def __init__(self, n_latents: int = 512, alpha: float = 0.1, samples: int = 300 * 1024, batch: int = 1024,
                 seed: int = 0, n_jobs: int = 1):
        self.n_latents = n_latents
        self.alpha = alpha
        self.samples = samples
        self.batch = batch
        self.seed = seed
        self.n_jobs = n_jobs

    def _model(self):
        from sklearn.decomposition import MiniBatchDictionaryLearning

        if not (self.n_latents >= 1 and self.batch >= 1 and self.samples >= 1 and self.alpha > 0):
            raise InputError("n_latents, batch, samples and alpha must be positive")
        return MiniBatchDictionaryLearning(
            n_components=self.n_latents, alpha=self.alpha, batch_size=self.batch, fit_algorithm="cd",
            positive_code=True, transform_algorithm="lasso_cd", transform_alpha=self.alpha, n_jobs=self.n_jobs,
            random_state=self.seed)

    def fit(self, X, y=None, callback=None, eval_every: int = 0) -> MiniBatchDictionary:
        """partial_fit on `samples // batch` shuffled batches; callback(self, step, samples, train_seconds)."""
        self.model_ = self._model()
        batches = Batches(X, self.batch, self.seed)
        self.train_seconds_, self.step_ = 0.0, 0
        for step in range(max(1, self.samples // self.batch)):
            xb = next(batches).double().numpy()
            t = time.perf_counter()
            self._partial(xb)
            self.train_seconds_ += time.perf_counter() - t
            if callback and eval_every and (self.step_ % eval_every == 0):
                callback(self, self.step_, self.step_ * self.batch, self.train_seconds_)
        return self

    def partial_fit(self, X, y=None) -> MiniBatchDictionary:
        if not hasattr(self, "model_"):
            self.model_, self.train_seconds_, self.step_ = self._model(), 0.0, 0
        self._partial(_f64(X))
        return self

    def _partial(self, X: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_.partial_fit(X)
        self.components_ = self.model_.components_.astype(np.float32)
        self.mean_ = np.zeros(X.shape[1], np.float32)
        self.d_in_ = X.shape[1]
        self.step_ += 1

    def _encode(self, X: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import SparseCoder
        from sklearn.exceptions import ConvergenceWarning

        coder = SparseCoder(self.components_.astype(np.float64), transform_algorithm="lasso_cd",
                            transform_alpha=self.alpha, positive_code=True, n_jobs=self.n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return coder.transform(X)


def _fit_floor(est, X, make):
    """Fit a floor model (PCA, FastICA) in float64 with n_latents <= min(samples, d); records train_seconds_."""
    from sklearn.exceptions import ConvergenceWarning

    X = _f64(X)
    if not 1 <= est.n_latents <= min(X.shape):
        raise InputError(f"{est.label} needs 1 <= n_latents <= min(samples, d) = {min(X.shape)}, got {est.n_latents}")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = make().fit(X)
    est.train_seconds_ = time.perf_counter() - t
    return m, X


class PCADictionary(DictionaryEstimator):
    """PCA as a floor: the top n_latents principal directions (n_latents <= d), dense codes."""

    kind, label = "pca", "PCA"
    sign_free = True

    def __init__(self, n_latents: int = 128, seed: int = 0):
        self.n_latents = n_latents
        self.seed = seed

    def fit(self, X, y=None) -> PCADictionary:
        from sklearn.decomposition import PCA

        m, X = _fit_floor(self, X, lambda: PCA(self.n_latents, random_state=self.seed))
        self.components_, self.mean_, self.d_in_ = m.components_.astype(np.float32), m.mean_.astype(np.float32), X.shape[1]
        return self

    partial_fit = fit

    def _encode(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_.T.astype(np.float64)


class ICADictionary(DictionaryEstimator):
    """FastICA as a floor: the mixing matrix's columns are the atoms (n_latents <= d), dense codes."""

    kind, label = "fastica", "FastICA"
    sign_free = True

    def __init__(self, n_latents: int = 128, seed: int = 0, max_iter: int = 400):
        self.n_latents = n_latents
        self.seed = seed
        self.max_iter = max_iter

    def fit(self, X, y=None) -> ICADictionary:
        from sklearn.decomposition import FastICA

        m, X = _fit_floor(self, X, lambda: FastICA(self.n_latents, whiten="unit-variance", random_state=self.seed,
                                                   max_iter=self.max_iter))
        A = m.mixing_.T  # [n_latents, d]: source i adds s_i * A_i to x
        scale = np.linalg.norm(A, axis=1, keepdims=True)
        self.components_ = (A / scale).astype(np.float32)
        self.unmixing_ = (m.components_ * scale).astype(np.float32)  # codes on the unit atoms: [n_latents, d]
        self.mean_, self.d_in_ = m.mean_.astype(np.float32), X.shape[1]
        return self

    partial_fit = fit

    def _encode(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.unmixing_.T.astype(np.float64)

    def _state(self) -> dict[str, np.ndarray]:
        return {"unmixing": self.unmixing_}

    def _set_state(self, t: dict) -> None:
        if "unmixing" not in t:
            raise InputError("a saved FastICA dictionary lacks `unmixing`")
        self.unmixing_ = t["unmixing"]


CLASSICAL = {c.kind: c for c in (MiniBatchDictionary, PCADictionary, ICADictionary)}


def load_classical(path: Path, cfg: dict) -> DictionaryEstimator:
    from monosemantic.runs import load_tensors

    cls = CLASSICAL[cfg["architecture"]]
    t = {k: v.numpy() for k, v in load_tensors(path / DICT_FILE).items()}
    if "components" not in t or t["components"].ndim != 2:
        raise InputError(f"{path}/{DICT_FILE} lacks components: [n_atoms, d]")
    valid = cls().get_params()
    est = cls(**{k: v for k, v in cfg.get("params", {}).items() if k in valid})
    est.components_ = t["components"]
    est.d_in_ = est.components_.shape[1]
    est.mean_ = t.get("mean", np.zeros(est.d_in_, np.float32))
    est._set_state(t)
    return est

