"""dkp.atomic: a write that fails leaves the previous output in place and no temporary behind;
a completed file gets the mode the umask gives."""

from __future__ import annotations

import os

import pytest

from dkp.atomic import atomic_dir, atomic_path, write_json


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
