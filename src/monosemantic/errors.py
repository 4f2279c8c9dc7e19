"""The one error type users see: bad input, reported by the CLI as one `error:` line and exit code 2."""


class InputError(ValueError):
    """Bad input from a user (a wrong shape, a missing file, an out-of-range value).

    The CLI prints its message as one line and exits with code 2.
    """
