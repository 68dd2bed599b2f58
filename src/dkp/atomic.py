"""Atomic file output: write to a temporary name beside the target, rename when complete.

An interrupted stage therefore never leaves a half-written file under the final
name, which DVC or Snakemake would otherwise take for a finished output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto target on success.

    `suffix` keeps an extension some writers insist on (np.save appends '.npy').
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; outputs get the usual umask permissions
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside target; it replaces target on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(folder: Path, target: Path) -> None:
    """Rename folder onto target. The old target is moved aside first, not deleted (a Ctrl-C
    halfway through deleting a large dataset would lose both), and removed after."""
    old = None
    try:
        with _interrupts_deferred():
            if target.exists():
                old = Path(
                    tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
                )
                os.replace(target, old)
            try:
                os.replace(folder, target)
            except BaseException:
                if old is not None:
                    os.replace(old, target)
                raise
    finally:
        if old is not None:  # a temporary's name: a rerun's clean_stale_temps ends what this cannot
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the few renames that swap a folder in, then deliver them.

    Python runs signal handlers between bytecodes of the main thread, so a Ctrl-C could
    otherwise land between moving the old folder aside and moving the new one in."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in _HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(held):
            signal.raise_signal(s)


_HELD = (signal.SIGINT, signal.SIGTERM)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Deterministic JSON (sorted keys, fixed float repr) so reruns are byte-identical."""
    write_text(target, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def write_csv(target: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically, with a fixed float format for byte-stable output."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")


def save_npy(target: str | os.PathLike, array) -> None:
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, array)


def clean_stale_temps(folder: str | os.PathLike, owner: str | None = None) -> int:
    """Remove temporaries left by a killed run (a rerun calls this first). Returns the count.

    owner: only the temporaries of that output (`.<owner>.*.tmp*`, from atomic_path and
    atomic_dir) directly in `folder`, for folders where other stages may be writing theirs
    at this moment; None: every temporary under `folder`.
    """
    n = 0
    folder = Path(folder)
    if not folder.exists():
        return 0
    for p in folder.glob(f".{owner}.*.tmp*") if owner else folder.rglob(".*.tmp*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n
