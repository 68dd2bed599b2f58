"""Reading API for the data stages' outputs: the manifest, the classes and the extracted frames.

Every later stage (training, features, figures) reads data only through these
functions, so the on-disk layout (README, "File contracts") lives in one place:
- data/manifest.csv: one row per video (MANIFEST_COLUMNS);
- data/classes.txt: one class name a line, line i = label_index i;
- data/skipped.csv: annotation rows dropped at ingest (SKIPPED_COLUMNS);
- data/frames/shard-<i>/<id>.t.npy float64 (T,) timestamps, the frames in one of two formats
  (frames.format), and index.csv (INDEX_COLUMNS); shard i = crc32(id) % frames.shards:
  - npy: <id>.npy uint8 (T, H, W, 3), read through a memory map;
  - jpeg: <id>.jpeg, the T frames' JPEG files one after the other, and <id>.j.npy int64 (T + 1,)
    the byte offset of each in it (frame k is bytes j[k]:j[k+1]), decoded when read.
  Readers get the same array-like either way (load), so no stage but extraction knows the format.
Paths are relative to the working directory, the project root holding params.yaml.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from . import layout
from .errors import DkpError
from .layout import CLASSES, MANIFEST, SKIPPED

MANIFEST_COLUMNS = [
    "id",
    "subset",
    "label",
    "label_index",
    "duration",
    "segments",
    "n_labels",
    "path",
    "status",
    "reason",
]
SKIPPED_COLUMNS = ["id", "subset", "reason", "detail"]
INDEX_COLUMNS = [
    "id",
    "status",
    "reason",
    "n_frames",
    "height",
    "width",
    "decoder",
]  # decoder: decord | pyav

# Ids and free text stay strings: an ActivityNet id such as "8e05" must not turn into 800000.0.
_STR = {
    "id": str,
    "subset": str,
    "label": str,
    "path": str,
    "status": str,
    "reason": str,
    "detail": str,
    "decoder": str,
}


def shard_of(video_id: str, shards: int) -> int:
    """The shard that holds a video's frames: crc32 of its id (stable across runs and machines)."""
    return zlib.crc32(video_id.encode("utf-8")) % shards


def shard_dir(i: int) -> Path:
    return layout.frames_shard_dir(i)


def selected_shards(p: dict, shard: tuple[int, int] | None) -> list[int]:
    """The shards a `--shard i/N` option selects (all of frames.shards when None)."""
    n = p["frames"]["shards"]
    if shard is None:
        return list(range(n))
    i, total = shard
    if total != n:
        raise DkpError(f"--shard {i}/{total}: N must equal frames.shards ({n})")
    return [i]


def _read_csv(path: Path, columns: list[str], hint: str) -> pd.DataFrame:
    if not path.exists():
        raise DkpError(f"{path} not found: run {hint} first")
    df = pd.read_csv(
        path,
        dtype={c: t for c, t in _STR.items() if c in columns},
        keep_default_na=False,
        na_values={c: [""] for c in columns if c not in _STR},
    )
    if list(df.columns) != columns:
        raise DkpError(
            f"{path}: expected columns {columns}, found {list(df.columns)} (rerun {hint})"
        )
    return df


def load_manifest(p: dict) -> pd.DataFrame:
    """data/manifest.csv, one row per video; `segments` parsed into a list of [start, end]
    seconds."""
    df = _read_csv(MANIFEST, MANIFEST_COLUMNS, "dkp data")
    df["segments"] = [json.loads(s) for s in df["segments"]]
    return df


def load_classes(p: dict) -> list[str]:
    """Class names; position = label_index."""
    if not CLASSES.exists():
        raise DkpError(f"{CLASSES} not found: run dkp data first")
    return CLASSES.read_text(encoding="utf-8").splitlines()


def load_skipped(p: dict) -> pd.DataFrame:
    """Annotation rows that ingest dropped, with reason (a category) and detail."""
    return _read_csv(SKIPPED, SKIPPED_COLUMNS, "dkp data")


def read_index(p: dict) -> pd.DataFrame:
    """The frame index of all shards 0..frames.shards-1, concatenated, with a `shard` column."""
    parts = []
    for i in range(p["frames"]["shards"]):
        path = shard_dir(i) / "index.csv"
        if not path.exists():
            raise DkpError(f"{path} not found: run dkp frames first")
        df = _read_csv(path, INDEX_COLUMNS, "dkp frames")
        df["shard"] = i
        parts.append(df)
    return (
        pd.concat(parts, ignore_index=True).sort_values("id", kind="stable").reset_index(drop=True)
    )


FORMATS = ("npy", "jpeg")


def frame_files(folder: Path, video_id: str, fmt: str) -> list[Path]:
    """A video's frame files in `fmt`, the one that marks it complete (written last) first."""
    if fmt == "npy":
        return [folder / f"{video_id}.npy"]
    return [folder / f"{video_id}.jpeg", folder / f"{video_id}.j.npy"]


def file_id(name: str) -> str | None:
    """The video id of a file name of the frame store (None for index.csv, settings.json)."""
    for ext in (".t.npy", ".j.npy", ".npy", ".jpeg"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return None


def encode_jpeg(frames: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
    """uint8 (T, H, W, 3) -> (the T JPEG files one after the other, int64 (T + 1,) offsets).
    Baseline JPEG, 4:2:0 chroma, optimised Huffman tables: the same bytes for the same frames."""
    from PIL import Image

    parts, offsets = [], [0]
    for frame in frames:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, "JPEG", quality=quality, optimize=True)
        parts.append(buf.getvalue())
        offsets.append(offsets[-1] + len(parts[-1]))
    return b"".join(parts), np.asarray(offsets, dtype=np.int64)


def decode_jpeg(data: bytes) -> np.ndarray:
    """One JPEG file -> uint8 (H, W, 3)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


class JpegFrames:
    """A video's JPEG frames as a read-only uint8 (T, H, W, 3) array-like: `frames[k]` decodes
    frame k, `frames[a:b]` and `frames[[k, ...]]` a stack, np.asarray(frames) all of them. No file
    stays open between reads (each reads its bytes with one pread), so any number of videos can
    be held, whatever `ulimit -n`."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path, self.offsets = Path(path), np.asarray(offsets, dtype=np.int64)
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or np.any(np.diff(self.offsets) <= 0):
            raise DkpError(f"{self.path}: its offsets file is not increasing (rerun dkp frames)")
        self._hw: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def shape(self) -> tuple[int, int, int, int]:
        if self._hw is None:
            from PIL import Image

            if len(self):
                with Image.open(io.BytesIO(self._read([0])[0])) as img:  # the header only
                    self._hw = (img.height, img.width)
            else:
                self._hw = (0, 0)
        return (len(self), *self._hw, 3)

    def _read(self, ks) -> list[bytes]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            out = []
            for k in ks:
                a, b = int(self.offsets[k]), int(self.offsets[k + 1])
                out.append(os.pread(fd, b - a, a))
            return out
        finally:
            os.close(fd)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= k < len(self):
                raise IndexError(f"frame {key} of {len(self)}")
            return decode_jpeg(self._read([k])[0])
        ks = range(len(self))[key] if isinstance(key, slice) else np.arange(len(self))[key]
        ks = [int(k) for k in np.atleast_1d(ks)]
        if not ks:
            return np.empty((0, *self.shape[1:]), dtype=np.uint8)
        return np.stack([decode_jpeg(b) for b in self._read(ks)])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def load(p: dict, video_id: str):
    """(frames uint8 (T, H, W, 3) array-like, timestamps float64 (T,) in seconds) of one video:
    the frames memory-mapped (npy) or decoded when read (jpeg, JpegFrames), whichever the store
    holds; indexing gives numpy arrays either way."""
    folder = shard_dir(shard_of(video_id, p["frames"]["shards"]))
    (npy,) = frame_files(folder, video_id, "npy")
    jpeg, offsets = frame_files(folder, video_id, "jpeg")
    if npy.exists():
        frames = np.load(npy, mmap_mode="r")
    elif jpeg.exists():
        frames = JpegFrames(jpeg, np.load(offsets))
    else:
        raise DkpError(
            f"{npy} not found: video {video_id!r} has no extracted frames (run dkp frames first, "
            f"or check its status in data/frames/shard-*/index.csv)"
        )
    return frames, np.load(folder / f"{video_id}.t.npy")


def available(p: dict, subset: str | None = None) -> pd.DataFrame:
    """Videos usable for training or evaluation: ok in the manifest and in the frame index, with
    at least one frame. Manifest columns plus n_frames, height, width, shard; sorted by id."""
    manifest = load_manifest(p)
    if subset is not None:
        manifest = manifest[manifest["subset"] == subset]
    index = read_index(p)
    index = index.loc[
        (index["status"] == "ok") & (index["n_frames"] > 0),
        ["id", "n_frames", "height", "width", "shard"],
    ]
    videos = manifest[manifest["status"] == "ok"].merge(index, on="id", how="inner")
    return videos.sort_values("id", kind="stable").reset_index(drop=True)
