"""Errors that the CLI turns into one clear line instead of a traceback."""


class DkpError(Exception):
    """A user-facing failure: bad input, missing file, inconsistent state. Exit status 1."""

    exit_code = 1


class ParamError(DkpError):
    """An invalid parameter. Exit status 2, raised before any output is written."""

    exit_code = 2


class VideoError(Exception):
    """A video that cannot be read; str(exc) is the reason recorded in the manifest or frame index
    (a recorded skip, not a stage failure)."""
