"""The sparse autoencoder architectures, one module each, behind a registry.

* relu:      f = ReLU(pre), L1 penalty weighted by the decoder row norms (`relu.py`).
* topk:      the k largest pre-activations of each sample, ReLU'd; unit decoder rows (`topk.py`).
* batchtopk: the k * batch largest of the batch; a learned threshold at inference (`batchtopk.py`).
* jumprelu:  a learned per-latent threshold, L0 penalty through a straight-through estimator (`jumprelu.py`).

Adding one: a module with an `Arch` subclass (see `base.Arch` for what it may override) and a line in ARCHS.
"""
from __future__ import annotations

from monosemantic.errors import InputError
from monosemantic.dictionary.archs import batchtopk, jumprelu, relu, topk
from monosemantic.dictionary.archs.base import Arch

ARCHS: dict[str, type[Arch]] = {
    "relu": relu.ReLU,
    "topk": topk.TopK,
    "batchtopk": batchtopk.BatchTopK,
    "jumprelu": jumprelu.JumpReLU,
}


def get(name: str) -> type[Arch]:
    """The architecture class registered as `name`."""
    if not isinstance(name, str) or name not in ARCHS:
        raise InputError(f"unknown architecture {name!r} (one of {', '.join(ARCHS)})")
    return ARCHS[name]


def from_saelens(name: str, ours: str | None = None) -> type[Arch] | None:
    """The architecture of a cfg.json's "architecture" (SAELens's name, or ours); None when unknown. `ours`, the
    architecture our own metadata names, wins where SAELens's name fits it (a batchtopk saved as a jumprelu)."""
    if ours in ARCHS and name in (ARCHS[ours].saelens, ours):
        return ARCHS[ours]
    if name in ARCHS:
        return ARCHS[name]
    return next((cls for cls in ARCHS.values() if cls.saelens == name), None)


__all__ = ["ARCHS", "Arch", "get", "from_saelens"]
