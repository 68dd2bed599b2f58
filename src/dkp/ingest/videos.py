"""Find each video's file and check that decord can read it.

A video is never replaced by another: an id whose file is absent is `missing`,
one that decord cannot open (zero bytes, not a video, audio only, zero frames,
a truncated container) is `unreadable` with a reason free of paths and clock
times, so the manifest is the same wherever and whenever it is built.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

EXTENSIONS = (".mp4", ".mkv", ".webm")
PREFIXES = ("v_", "")  # ActivityNet downloads are v_<id>.mp4; other mirrors drop the prefix

POOL_MIN = 64  # below this many files a process pool costs more than it saves
_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")
_CHECK_FAILED = re.compile(r"Check failed: .*\(-?\d+ vs\. -?\d+\) (.+)$")
_READ_FAILED = re.compile(r"av_read_frame failed with (-?\d+)")
# FFmpeg error codes decord prints as bare numbers (negated AVERROR tags), as av_strerror words them
_AVERROR = {1094995529: "Invalid data found when processing input", 541478725: "End of file"}


def index_folder(folder: str | os.PathLike) -> dict[str, str]:
    """File name -> path for every video file under folder (recursive, so per-split or per-class
    subfolders work). Where two subfolders hold the same name, the first in sorted order wins."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(EXTENSIONS) and not name.startswith("."):
                found.setdefault(name, os.path.join(root, name))
    return found


def locate(video_id: str, files: dict[str, str]) -> str | None:
    """The file of one id: v_<id> before <id>, .mp4 before .mkv before .webm; None if absent."""
    for prefix in PREFIXES:
        for ext in EXTENSIONS:
            path = files.get(f"{prefix}{video_id}{ext}")
            if path is not None:
                return path
    return None


@contextlib.contextmanager
def captured_stderr():
    """Redirect file descriptor 2 to a temporary file for the block; yields a reader of its text.

    decord's C++ logger writes open failures straight to fd 2, bypassing Python: captured,
    they become the `reason` instead of noise between progress bars.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: (tmp.seek(0), tmp.read().decode("utf-8", "replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def clean_reason(message: str, path: str | None = None) -> str:
    """One deterministic line from a decord/ffmpeg message: no clock time, source line or file path."""
    text = _LOG_PREFIX.sub("", message)
    if path:
        text = text.replace(str(path), "<file>").replace(os.path.basename(str(path)), "<file>")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any("cannot find video stream" in ln for ln in lines):
        return "no video stream"
    for ln in lines:  # "ERROR opening: <file>, Invalid data found when processing input"
        if ln.startswith("ERROR opening:"):
            return "cannot open: " + ln.split(",", 1)[-1].strip()
    for ln in lines:  # "Error: av_read_frame failed with 1094995529": packet data cut short or corrupt
        found = _READ_FAILED.search(ln)
        if found:
            code = abs(int(found.group(1)))
            return "cannot read packets: " + _AVERROR.get(code, f"FFmpeg error {code}")
    for ln in lines:  # "Check failed: <C++ condition> (-22 vs. 0) Cannot create buffer source"
        found = _CHECK_FAILED.search(ln)
        if found:
            return "cannot open: " + found.group(1)
    return lines[0] if lines else "unknown decord error"


def open_reader(path: str):
    """decord.VideoReader on the CPU with one decoding thread (parallelism is across videos).

    Raises VideoError(reason) when the file cannot be opened or has no frames.
    """
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    try:
        size = os.path.getsize(path)
    except OSError as exc:  # gone since ingest, or a broken link
        raise VideoError(f"cannot open: {exc.strerror}") from None
    if size == 0:
        raise VideoError("empty file (0 bytes)")
    with captured_stderr() as read_log:
        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises RuntimeError or DECORDError, both with C++ text
            raise VideoError(clean_reason(read_log() + "\n" + str(exc), path)) from None
    if len(reader) == 0:
        raise VideoError("zero frames")
    return reader


class VideoError(Exception):
    """A video that cannot be read; str(exc) is the reason recorded in the manifest or index."""


def probe(path: str | None) -> tuple[str, str]:
    """(status, reason) for the manifest: ok / missing / unreadable. Opens the file and reads
    its length and frame rate only, which costs milliseconds; decoding is the frames stage's job."""
    if path is None:
        return "missing", "no file v_<id> or <id> with extension " + "/".join(EXTENSIONS)
    try:
        reader = open_reader(path)
        fps = reader.get_avg_fps()
    except VideoError as exc:
        return "unreadable", str(exc)
    if not fps > 0:
        return "unreadable", f"invalid frame rate {fps}"
    return "ok", ""


def probe_many(paths: list[str | None], workers: int) -> list[tuple[str, str]]:
    """probe() over many files, in `workers` processes when that pays off; results in input order."""
    if workers <= 1 or len(paths) < POOL_MIN:
        return [probe(p) for p in paths]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(probe, paths, chunksize=16)


def relpath(path: str | None) -> str:
    """Path as written in the manifest: relative to the project root when inside it, else as is."""
    if path is None:
        return ""
    p = Path(path)
    with contextlib.suppress(ValueError):
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    return p.as_posix()
