"""Dictionary learners behind one scikit-learn-style API: sparse autoencoders and classical baselines.

    fit(X) / partial_fit(X), transform(X) -> sparse codes (scipy CSR; output="torch" for torch sparse CSR),
    inverse_transform(codes), score(X) = 1 - FVU, components_ (the atoms), get_params / set_params,
    save(dir) and `load(dir)`.
"""
from __future__ import annotations

from pathlib import Path

from monosemantic.errors import InputError
from monosemantic.dictionary.base import DictionaryEstimator
from monosemantic.dictionary.classical import CLASSICAL, ICADictionary, MiniBatchDictionary, PCADictionary
from monosemantic.dictionary.estimator import SparseAutoencoder


def load(path: str | Path) -> DictionaryEstimator:
    """Open a saved dictionary directory of any kind (an SAE in SAELens's layout, or a classical one)."""
    from monosemantic.dictionary.classical import load_classical
    from monosemantic.runs import read_json

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"not a saved dictionary directory: {path}")
    cfg = read_json(path / "cfg.json")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("architecture", ""), str):
        raise InputError(f"{path}/cfg.json must be a JSON object whose architecture is a name")
    if cfg.get("architecture") in CLASSICAL:
        if not isinstance(cfg.get("params", {}), dict):
            raise InputError(f"{path}/cfg.json: params must be a JSON object")
        est = load_classical(path, cfg)
        est.check_loaded(path, cfg)
        return est
    return SparseAutoencoder.load(path)


__all__ = ["SparseAutoencoder", "MiniBatchDictionary", "PCADictionary", "ICADictionary", "DictionaryEstimator", "load"]
