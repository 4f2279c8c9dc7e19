"""monosemantic: solving superposition, measured against ground truth."""

__version__ = "0.1.0"


class InputError(ValueError):
    """Bad input from a user (a wrong shape, a missing file, an out-of-range value).

    The CLI prints its message as one line and exits with code 2.
    """
