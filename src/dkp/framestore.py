"""Reading API for the data stages' outputs: the manifest, the classes and the extracted frames.

Every later stage (training, features, figures) reads data only through these
functions, so the on-disk layout (README, "File contracts") lives in one place:
- data/manifest.csv: one row per video (MANIFEST_COLUMNS);
- data/classes.txt: one class name a line, line i = label_index i;
- data/skipped.csv: annotation rows dropped at ingest (SKIPPED_COLUMNS);
- data/frames/shard-<i>/<id>.npy uint8 (T, H, W, 3), <id>.t.npy float64 (T,),
  index.csv (INDEX_COLUMNS); shard i = crc32(id) % frames.shards.
Paths are relative to the working directory, the project root holding params.yaml.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DkpError

DATA = Path("data")
MANIFEST = DATA / "manifest.csv"
CLASSES = DATA / "classes.txt"
SKIPPED = DATA / "skipped.csv"
FRAMES = DATA / "frames"

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
    return FRAMES / f"shard-{i}"


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


def load(p: dict, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T, H, W, 3) memory-mapped, timestamps float64 (T,) in seconds) of one
    video."""
    folder = shard_dir(shard_of(video_id, p["frames"]["shards"]))
    path = folder / f"{video_id}.npy"
    if not path.exists():
        raise DkpError(
            f"{path} not found: video {video_id!r} has no extracted frames (run dkp frames first, "
            f"or check its status in data/frames/shard-*/index.csv)"
        )
    return np.load(path, mmap_mode="r"), np.load(folder / f"{video_id}.t.npy")


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
