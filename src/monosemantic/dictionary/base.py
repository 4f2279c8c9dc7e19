"""What every dictionary learner shares: sparse codes out, reconstructions, score, saving as a directory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator

from monosemantic.errors import InputError
from monosemantic._version import __version__
from monosemantic.data import as_matrix, to_output
from monosemantic.runs import json_files, write_dir

DICT_FILE = "dictionary.safetensors"  # a classical dictionary's arrays (an SAE has SAELens's file names)


class DictionaryEstimator(BaseEstimator):
    """Base: subclasses set components_ [n_atoms, d], mean_ [d], d_in_ and implement _encode(X float64) -> codes."""

    kind = "dictionary"
    sign_free = False  # True: atoms are defined up to sign (PCA, FastICA); score with recovery's absolute=True

    def _fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise InputError(f"this {type(self).__name__} is not fitted yet (call fit or load)")

    def _as_input(self, X):
        X = as_matrix(X)
        if X.shape[1] != self.d_in_:
            raise InputError(f"data have d={X.shape[1]} but the dictionary was built for d={self.d_in_}")
        return X

    def transform(self, X, output: str = "scipy", chunk: int = 8192):
        """Codes [samples, n_atoms] as scipy CSR float32 (output='torch': a torch sparse CSR tensor)."""
        self._fitted()
        X = self._as_input(X)
        parts = [sp.csr_matrix(self._encode(np.asarray(X[s:s + chunk], dtype=np.float64)).astype(np.float32))
                 for s in range(0, len(X), chunk)]
        return to_output(sp.vstack(parts, format="csr"), output)

    def inverse_transform(self, codes) -> np.ndarray:
        """Reconstructions codes @ components_ + mean_: [samples, d]."""
        self._fitted()
        from monosemantic.recovery import _csr

        C = _csr(codes)
        if C.shape[1] != len(self.components_):
            raise InputError(f"codes have {C.shape[1]} latents, the dictionary has {len(self.components_)}")
        return (np.asarray(C @ self.components_.astype(np.float64)) + self.mean_).astype(np.float32)

    def score(self, X, y=None) -> float:
        """1 - FVU on X (higher is better, scikit-learn's convention)."""
        from monosemantic.recovery import fvu

        X = self._as_input(X)
        return 1 - fvu(np.asarray(X), self.inverse_transform(self.transform(X)))

    def check_loaded(self, path: Path, cfg: dict) -> None:
        """InputError unless the loaded arrays agree with each other and with cfg.json (d_in, d_sae, alpha)."""
        where = f"{path}/{DICT_FILE}"
        arrays = {"components": self.components_, "mean": self.mean_, **self._state()}
        want = {"components": (cfg.get("d_sae", len(self.components_)), self.d_in_), "mean": (self.d_in_,)}
        if "unmixing" in arrays:
            want["unmixing"] = want["components"]
        for name, shape in want.items():
            a = arrays[name]
            if tuple(a.shape) != tuple(shape):
                raise InputError(f"{where}: {name} has shape {list(a.shape)}, want {list(shape)} "
                                 f"(from cfg.json and components)")
            if a.dtype.kind != "f" or not np.isfinite(a).all():
                raise InputError(f"{where}: {name} must be a finite float array")
        if cfg.get("d_in", self.d_in_) != self.d_in_:
            raise InputError(f"{path}/cfg.json says d_in={cfg['d_in']} but components have d={self.d_in_}")
        alpha = getattr(self, "alpha", 1.0)
        if not isinstance(alpha, (int, float)) or not 0 < alpha < float("inf"):
            raise InputError(f"{path}/cfg.json: alpha must be a positive number, got {alpha!r}")

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, t: dict) -> None:
        pass

    def save(self, path: str | Path, overwrite: bool = False, extra_json: dict | None = None) -> Path:
        """cfg.json + dictionary.safetensors (components, mean and any extra state) in a new directory;
        extra_json {name: object} adds JSON files to the same atomic write."""
        from safetensors.numpy import save_file

        from monosemantic.runs import check_new_dir, write_json

        self._fitted()
        path = check_new_dir(path, overwrite)
        cfg = {"architecture": self.kind, "d_in": int(self.d_in_), "d_sae": len(self.components_),
               "sign_free": self.sign_free, "params": self.get_params(),
               "train_seconds": getattr(self, "train_seconds_", None), "monosemantic": __version__}
        arrays = {"components": self.components_, "mean": self.mean_, **self._state()}
        write_dir(path, {"cfg.json": lambda p: write_json(p, cfg),
                         DICT_FILE: lambda p: save_file({k: np.ascontiguousarray(v, np.float32)
                                                         for k, v in arrays.items()}, str(p)),
                         **json_files(extra_json)})
        return path
