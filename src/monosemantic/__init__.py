"""monosemantic: solving superposition, measured against ground truth.

    import monosemantic as ms
    toy = ms.train(ms.ToyTrainConfig(n=20, m=5, sparsity=[0.9], importance_decay=0.7))  # W: [1, 5, 20]
    toy.measures()                                   # norms, superposition, D*, geometry per sparsity
    sae = ms.SparseAutoencoder(n_latents=40, k=3).fit(X)   # X: [samples, d]
    ms.dictionary_scores(F, sae.components_)          # F: [features, d], the true directions
    codes = ms.unfold(X, F)                           # [samples, features] sparse codes
    lm = ms.train_lm(ms.LMTrainConfig(variant="l1", strength=1e-3), "runs/lm")  # a byte LM; ms.load_lm reads it

Names load on first use (module `__getattr__`), so `import monosemantic` stays light. No module of the package
imports this root, so it can re-export the public API without cycles.
"""
import os
from importlib import import_module

# Read by OpenMP when torch loads it, which any submodule's import does after this root: idle intra-op threads
# sleep instead of spinning, so on a busy machine they do not burn the CPU the other processes need (toy training
# beside other work: 0.5 s against 69 s, benchmarks/threads_under_load.py). A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from monosemantic._version import __version__
from monosemantic.errors import InputError

# public name -> module that defines it
_WHERE = {
    # toy models: a config in, trained weights out; run directories back in
    "ToyTrainConfig": "monosemantic.config",
    "train": "monosemantic.experiments.toy",
    "load_run": "monosemantic.experiments.toy",
    "ToyResult": "monosemantic.experiments.toy",
    # measures of superposition on W: [instances, m, n]
    "measures": "monosemantic.measures",
    "feature_norms": "monosemantic.measures",
    "superposition": "monosemantic.measures",
    "feature_dimensionality": "monosemantic.measures",
    "dims_per_feature": "monosemantic.measures",
    "monosemantic_neurons": "monosemantic.measures",
    "geometry": "monosemantic.measures",
    # ground-truth data: X: [samples, d], F: [features, d], codes: [samples, features]
    "Data": "monosemantic.data",
    "synth_uniform": "monosemantic.data",
    "synth_sharkey": "monosemantic.data",
    "toy_activations": "monosemantic.data",
    "load_data": "monosemantic.data",
    "save_data": "monosemantic.data",
    "split": "monosemantic.data",
    # dictionary learning: scikit-learn-style estimators
    "SparseAutoencoder": "monosemantic.dictionary",
    "MiniBatchDictionary": "monosemantic.dictionary",
    "PCADictionary": "monosemantic.dictionary",
    "ICADictionary": "monosemantic.dictionary",
    "load_dictionary": "monosemantic.dictionary",
    # unfolding: sparse codes of X against a matrix F (compressed sensing)
    "unfold": "monosemantic.sensing",
    "unfold_info": "monosemantic.sensing",
    "atoms_of": "monosemantic.experiments.unfolding",
    # scores against ground truth
    "dictionary_scores": "monosemantic.recovery",
    "code_scores": "monosemantic.recovery",
    "reconstruction_scores": "monosemantic.recovery",
    "all_scores": "monosemantic.recovery",
    "fvu": "monosemantic.recovery",
    "l0": "monosemantic.recovery",
    # language models trained here: a causal transformer on bytes, trained into a resumable run directory
    "LMConfig": "monosemantic.lm.model",
    "ByteLM": "monosemantic.lm.model",
    "LMTrainConfig": "monosemantic.lm.train",
    "train_lm": "monosemantic.lm.train",
    "load_lm": "monosemantic.lm.train",
}
_RENAMED = {"load_dictionary": "load", "train_lm": "train", "load_lm": "load"}
_MODULES = {"measures"}

__all__ = ["InputError", "__version__", *_WHERE]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'monosemantic' has no attribute {name!r}")
    module = import_module(_WHERE[name])
    value = module if name in _MODULES else getattr(module, _RENAMED.get(name, name))
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
