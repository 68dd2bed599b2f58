"""dkp.atomic: a write that fails leaves the previous output in place and no temporary behind;
a completed file gets the mode the umask gives; a signal during a folder swap waits for it."""

from __future__ import annotations

import os
import signal

import pytest

from dkp.atomic import _interrupts_deferred, atomic_dir, atomic_path, write_json


def test_failed_atomic_write_keeps_the_old_output_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"run": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"run": ')  # half written, then the writer fails
            raise RuntimeError("disk full")
    folder = tmp_path / "group"
    with atomic_dir(folder) as tmp:
        (tmp / "a.npz").write_bytes(b"complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(folder) as tmp:
            (tmp / "a.npz").write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert (folder / "a.npz").read_bytes() == b"complete"
    assert sorted(f.name for f in tmp_path.rglob("*")) == ["a.npz", "group", "out.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_dir_replaces_a_folder_and_leaves_no_temporary(tmp_path):
    folder = tmp_path / "group"
    for content in (b"first", b"second"):
        with atomic_dir(folder) as tmp:
            (tmp / "a.npz").write_bytes(content)
            (tmp / content.decode()).mkdir()
    assert (folder / "a.npz").read_bytes() == b"second"
    assert sorted(f.name for f in tmp_path.rglob("*")) == ["a.npz", "group", "second"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_swap_is_delivered_after_it(sig):
    """Ctrl-C (or SIGTERM under a stage's handler) between the two renames waits for the second.
    Both signals get Python's KeyboardInterrupt handler first, as a stage has them: a process
    started in the background by a non-interactive shell inherits SIGINT ignored."""
    previous = {
        s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGINT, signal.SIGTERM)
    }
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupts_deferred():
                signal.raise_signal(sig)
                done.append("second rename")
        assert done == ["second rename"]
        for s in previous:  # the handlers in place before the swap are back
            assert signal.getsignal(s) is signal.default_int_handler
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
