"""monosemantic: solving superposition, measured against ground truth.

No module of the package imports this root, so it can re-export the public API without cycles.
"""
from monosemantic._version import __version__
from monosemantic.errors import InputError

__all__ = ["InputError", "__version__"]
