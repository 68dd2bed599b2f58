"""Errors that the CLI turns into one clear line instead of a traceback."""


class DkpError(Exception):
    """A user-facing failure: bad input, missing file, inconsistent state. Exit status 1."""

    exit_code = 1


class ParamError(DkpError):
    """An invalid parameter. Exit status 2, raised before any output is written."""

    exit_code = 2
