"""Find each video's file and probe it through the video layer (dkp.video).

A video is never replaced by another: an id whose file is absent is `missing`, one that
no decoder can open is `unreadable` with the video layer's reason, so the manifest is
the same wherever and whenever it is built.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import VideoError
from ..video import open_video
from ..workers import executor as workers_executor

EXTENSIONS = (".mp4", ".mkv", ".webm")
PREFIXES = ("v_", "")  # ActivityNet downloads are v_<id>.mp4; other mirrors drop the prefix

POOL_MIN = 64  # below this many files a process pool costs more than it saves


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


def probe(path: str | None) -> tuple[str, str]:
    """(status, reason) for the manifest: ok / missing / unreadable. Opens the file and reads
    its length and frame rate only (PyAV: and decodes the first frame), which costs milliseconds;
    decoding is the frames stage's job."""
    if path is None:
        return "missing", "no file v_<id> or <id> with extension " + "/".join(EXTENSIONS)
    try:
        _, reader = open_video(path)
        fps = reader.get_avg_fps()
    except VideoError as exc:
        return "unreadable", str(exc)
    if not fps > 0:
        return "unreadable", f"invalid frame rate {fps}"
    return "ok", ""


def probe_many(paths: list[str | None], workers: int) -> list[tuple[str, str]]:
    """probe() over many files, in `workers` processes when that pays off; results in input
    order."""
    if workers <= 1 or len(paths) < POOL_MIN:
        return [probe(p) for p in paths]

    with workers_executor(workers) as ex:
        return list(ex.map(probe, paths, chunksize=16))


def relpath(path: str | None) -> str:
    """Path as written in the manifest: relative to the project root when inside it, else as is."""
    if path is None:
        return ""
    p = Path(path)
    with contextlib.suppress(ValueError):
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    return p.as_posix()
