"""`dkp frames [--shard i/N]`: decode each ok video of the manifest into uint8 frames.

Sampling (docs/contracts.md): a video of length L is the end of its last decoded frame (a
video shorter than its annotated duration keeps what it has). With
`frames.per_video_count: fps`, the video is cut into bins of 1/fps seconds and the decoded
frame nearest each bin centre is kept (ceil(L * fps - 0.5) frames, at least one). With
`sweep` (the default), the video keeps at least m = max(that count, the largest count any
configuration of the sweep asks of a video of length L, dkp.sampling.required_count) frames,
as every k-th decoded frame (kept_indices): every configuration is then fed the distinct
frames it names wherever the video has them. Stored timestamps are the kept frames' own
presentation times.
Each frame is resized (Pillow, bilinear with antialiasing) so its short side is
`frames.size`, then centre-cropped to `frames.crop`.

Decoding: decord where it reads the file right, else PyAV (AV1; an MP4 without a
sync-sample table), chosen by dkp.video.open_video and recorded in the
index's `decoder` column; both go through the same timestamps, sampling and
resizing. PyAV decodes from the start in one pass, converting only the wanted
frames to RGB. decord: one `get_batch` per chunk of wanted indices (CHUNK), which
skips the RGB conversion of the frames it passes over (bench/README.md, design
measurements). decord's own resize is not used: with get_batch it fails on some target
sizes, the bug (padded rows, see unpad) that makes get_batch fail on videos 16, 24 or
48 px wide; those are read with skip_frames + next instead.

Layout and resume: data/frames/shard-<i>/<id>.t.npy and the frames in frames.format
(dkp.framestore: <id>.npy, or <id>.j.npy and <id>.jpeg at frames.jpeg_quality) are written
atomically, the file that marks a video complete last, each shard's index.csv last of all. A
rerun cleans stale temporaries, reuses every video whose files exist (unless the settings
changed: frames.fps/size/crop, what the sweep asks, and format and quality for jpeg, recorded
in the shard's settings.json), drops files of videos no longer in the manifest, and decodes the
rest. A video that cannot be opened, has no frames or fails mid-decode is recorded `unreadable`
with the reason; extraction goes on.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from . import framestore, layout
from .atomic import atomic_path, clean_stale_temps, save_npy, write_csv, write_json
from .errors import DkpError, VideoError
from .runtime import progress_disabled
from .sampling import demand, nearest_indices, required_count
from .video import CHUNK, captured_stderr, clean_reason, open_video, presentation_times, read_chunks
from .workers import imap_bounded

# ---- pure functions -------------------------------------------------------------------------


def frame_count(length: float, fps: float, demand: tuple = ()) -> int:
    """Frames kept of a video of `length` seconds: ceil(L * fps - 0.5), at least one, at least
    what `demand` (dkp.sampling.demand; empty: none) asks of it."""
    k = max(1, math.ceil(round(length * fps - 0.5, 9)))
    return max(k, required_count(demand, length)) if demand else k


def sample_times(length: float, fps: float) -> np.ndarray:
    """Bin centres (k + 0.5) / fps that fall before `length` seconds; at least one."""
    k = frame_count(length, fps)
    return (np.arange(k) + 0.5) / fps


def kept_indices(pts: np.ndarray, end: float, fps: float, demand: tuple = ()) -> np.ndarray:
    """Which decoded frames (presentation times `pts`, video end `end`) are stored.

    Without a demand: the frame nearest each 1/fps bin centre, each once. With one: every k-th
    decoded frame, k = the largest stride that still keeps frame_count frames (all of them when
    the video has fewer), so the stored frames lie on the video's own even grid. Picking the frame
    nearest each of m bin centres instead would snap them to the decoded grid unevenly, and a
    configuration asking for nearly m frames would then find two of its segment centres nearest
    the same stored frame."""
    if not demand:
        return np.unique(nearest_indices(pts, sample_times(end, fps)))
    stride = max(1, len(pts) // frame_count(end, fps, demand))
    return np.arange(stride // 2, len(pts), stride)


def output_shape(height: int, width: int, size: int, crop: int | None) -> tuple[int, int, int, int]:
    """(resized h, resized w, final h, final w): short side -> size, then a centre crop."""
    scale = size / min(height, width)
    rh, rw = (
        (size, max(size, round(width * scale)))
        if height <= width
        else (max(size, round(height * scale)), size)
    )
    return rh, rw, (crop or rh), (crop or rw)


def resize_crop(frames: np.ndarray, size: int, crop: int | None) -> np.ndarray:
    """uint8 (n, h, w, 3) -> uint8 (n, H, W, 3) per output_shape."""
    rh, rw, fh, fw = output_shape(frames.shape[1], frames.shape[2], size, crop)
    if (rh, rw) != frames.shape[1:3]:
        frames = np.stack(
            [
                np.asarray(Image.fromarray(f).resize((rw, rh), Image.Resampling.BILINEAR))
                for f in frames
            ]
        )
    top, left = (rh - fh) // 2, (rw - fw) // 2
    return np.ascontiguousarray(frames[:, top : top + fh, left : left + fw])


def extract_video(
    path: str, fps: float, size: int, crop: int | None, demand: tuple = ()
) -> tuple[np.ndarray, np.ndarray, str]:
    """Decode one video: (uint8 (T, H, W, 3), float64 (T,) timestamps, decoder "decord" or "pyav").
    Raises VideoError."""
    decoder, reader = open_video(path)
    return (*decode(path, decoder, reader, fps, size, crop, demand), decoder)


def decode(
    path: str, decoder: str, reader, fps: float, size: int, crop: int | None, demand: tuple = ()
) -> tuple[np.ndarray, np.ndarray]:
    """(frames, timestamps) of an opened video; `reader` a decord.VideoReader (decoder "decord") or
    a PyAVReader ("pyav"), read through the same sampling and resizing. Raises VideoError."""
    import decord

    pts, end = presentation_times(reader)
    idx = kept_indices(pts, end, fps, demand)
    out, filled = None, 0
    with captured_stderr() as read_log:
        try:
            for batch in (
                read_chunks(path, reader, idx) if decoder == "decord" else reader.chunks(idx, CHUNK)
            ):
                small = resize_crop(batch, size, crop)
                if out is None:
                    out = np.empty((len(idx),) + small.shape[1:], dtype=np.uint8)
                out[filled : filled + len(small)] = small
                filled += len(small)
        except (decord.DECORDError, RuntimeError) as exc:
            raise VideoError(
                f"decode failed after {filled} of {len(idx)} frames: "
                f"{clean_reason(str(exc) + chr(10) + read_log(), path)}"
            ) from None
        except VideoError as exc:  # PyAV's reason, already one clean line
            raise VideoError(f"decode failed after {filled} of {len(idx)} frames: {exc}") from None
    return out, pts[idx]


def extract(path: str, fps: float, size: int, crop: int | None) -> tuple[np.ndarray, np.ndarray]:
    """extract_video without the decoder: (frames, timestamps). Raises VideoError."""
    return extract_video(path, fps, size, crop)[:2]


def process(task: tuple) -> dict:
    """Worker: extract one video into its shard folder; returns its index.csv row."""
    vid, path, folder, fps, size, crop, demand, fmt, quality = task
    try:
        frames, times, decoder = extract_video(path, fps, size, crop, demand)
    except VideoError as exc:
        return {
            "id": vid,
            "status": "unreadable",
            "reason": str(exc),
            "n_frames": 0,
            "height": 0,
            "width": 0,
            "decoder": "",
        }
    store(Path(folder), vid, frames, times, fmt, quality)
    return row_for(vid, frames.shape, decoder)


def store(folder: Path, vid: str, frames: np.ndarray, times: np.ndarray, fmt: str, quality: int):
    """Write one video's timestamps and frames in `fmt` (dkp.framestore), each file atomically; the
    file that marks the video complete (framestore.frame_files' first) last."""
    save_npy(folder / f"{vid}.t.npy", times)
    if fmt == "npy":
        save_npy(folder / f"{vid}.npy", frames)
        return
    data, offsets = framestore.encode_jpeg(frames, quality)
    jpeg, offsets_path = framestore.frame_files(folder, vid, "jpeg")
    save_npy(offsets_path, offsets)
    with atomic_path(jpeg) as tmp:
        tmp.write_bytes(data)


def row_for(vid: str, shape: tuple, decoder: str) -> dict:
    return {
        "id": vid,
        "status": "ok",
        "reason": "",
        "n_frames": shape[0],
        "height": shape[1],
        "width": shape[2],
        "decoder": decoder,
    }


def reuse(folder: Path, vid: str, path: str, decoder: str | None, fmt: str = "npy") -> dict | None:
    """The index row of a video a previous run completed, or None to decode it (again). `decoder`:
    the previous index's entry; without one (an interrupted run) the file is opened to choose
    again."""
    files = framestore.frame_files(folder, vid, fmt)
    tpath = folder / f"{vid}.t.npy"
    if not (all(f.exists() for f in files) and tpath.exists()):
        return None
    try:
        times = np.load(tpath, mmap_mode="r")
        if fmt == "npy":
            frames = np.load(files[0], mmap_mode="r")
        else:
            frames = framestore.JpegFrames(files[0], np.load(files[1]))
            if frames.offsets[-1] != files[0].stat().st_size:
                return None
        shape = frames.shape
    except (ValueError, OSError, DkpError):
        return None
    if frames.dtype != np.uint8 or len(shape) != 4 or times.shape != (shape[0],):
        return None
    if decoder not in ("decord", "pyav"):
        try:
            decoder = open_video(path)[0]
        except VideoError:
            return None  # decoded again, to record why it is unreadable now
    return row_for(vid, shape, decoder)


# ---- the stage ----------------------------------------------------------------------------------


def extraction_demand(p: dict) -> tuple:
    """What the sweep's configurations ask of each video (frames.per_video_count: sweep), or
    nothing (fps)."""
    if p["frames"]["per_video_count"] != "sweep":
        return ()
    from . import configs

    return demand(configs.build(p))


def prepare_shard(folder: Path, settings: dict, ids: set[str]) -> dict[str, str]:
    """Clean a shard folder for a (re)run: stale temporaries, the old index, files made with other
    settings or of videos no longer in the manifest. Returns id -> decoder of the old index's ok
    rows."""
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(folder)
    decoders = {}
    index = folder / "index.csv"
    if index.exists():
        try:
            old_index = pd.read_csv(index, dtype=str, keep_default_na=False)
        except (ValueError, OSError):  # unreadable: every reused video's decoder is chosen again
            old_index = pd.DataFrame()
        if {"id", "status", "decoder"} <= set(old_index.columns):
            ok = old_index[old_index["status"] == "ok"]
            decoders = dict(zip(ok["id"], ok["decoder"]))
        index.unlink()
    settings_path = folder / "settings.json"
    old = json.loads(settings_path.read_text()) if settings_path.exists() else None
    for f in folder.iterdir():
        vid = framestore.file_id(f.name)
        if vid is not None and not f.name.startswith(".") and (old != settings or vid not in ids):
            f.unlink()
    write_json(settings_path, settings)
    return decoders


def _run_tasks(tasks: list[tuple], workers: int):
    """Yield (task, process(task)) for every task, over `workers` processes (in the order they
    finish), which stop when the stage is killed (dkp.workers)."""
    if workers <= 1 or len(tasks) <= 1:
        yield from ((task, process(task)) for task in tasks)
        return
    yield from imap_bounded(process, tasks, workers)


def shard_settings(p: dict) -> dict:
    """What a shard's files were made with (settings.json): a change re-extracts the shard."""
    f = p["frames"]
    settings = {
        "fps": f["fps"],
        "size": f["size"],
        "crop": f["crop"],
        "demand": [list(x) for x in extraction_demand(p)],
    }
    if f["format"] != "npy":
        settings.update(format=f["format"], jpeg_quality=f["jpeg_quality"])
    return settings


def _videos_by_shard(p: dict, shards: list[int]) -> dict[int, list[tuple[str, str]]]:
    """(id, path) of the manifest's ok videos in each selected shard, sorted by id."""
    manifest = framestore.load_manifest(p)
    ok = manifest[manifest["status"] == "ok"].sort_values("id", kind="stable")
    by_shard = {i: [] for i in shards}
    for vid, path in zip(ok["id"], ok["path"]):
        i = framestore.shard_of(vid, p["frames"]["shards"])
        if i in by_shard:
            by_shard[i].append((vid, path))
    return by_shard


def run(p: dict, args) -> None:
    start = time.perf_counter()
    f = p["frames"]
    demand, fmt, quality = extraction_demand(p), f["format"], f["jpeg_quality"]
    shards = framestore.selected_shards(p, getattr(args, "shard", None))
    by_shard = _videos_by_shard(p, shards)
    if len(shards) == f["shards"]:  # a full run also drops shards of an earlier, larger count
        for old in layout.FRAMES.glob("shard-*"):
            if old.is_dir() and old.name.removeprefix("shard-") not in {str(i) for i in shards}:
                shutil.rmtree(old)
    rows: dict[int, list[dict]] = {i: [] for i in shards}
    tasks = []
    for i in shards:
        folder = framestore.shard_dir(i)
        decoders = prepare_shard(folder, shard_settings(p), {vid for vid, _ in by_shard[i]})
        for vid, path in by_shard[i]:
            done = reuse(folder, vid, path, decoders.get(vid), fmt)
            if done is not None:
                rows[i].append(done)
            else:
                tasks.append(
                    (vid, path, str(folder), f["fps"], f["size"], f["crop"], demand, fmt, quality)
                )
    reused = sum(len(r) for r in rows.values())

    bar = tqdm(total=len(tasks), desc="frames", unit="video", disable=progress_disabled())
    with contextlib.closing(_run_tasks(tasks, f["workers"])) as results:
        for task, row in results:
            rows[framestore.shard_of(task[0], f["shards"])].append(row)
            bar.update()
    bar.close()

    for i in shards:
        table = pd.DataFrame(rows[i], columns=framestore.INDEX_COLUMNS).sort_values(
            "id", kind="stable"
        )
        write_csv(framestore.shard_dir(i) / "index.csv", table)  # last: the shard is complete

    total = pd.DataFrame([r for i in shards for r in rows[i]], columns=framestore.INDEX_COLUMNS)
    print(
        f"dkp frames: shards {shards}: {len(total)} videos ({reused} reused, "
        f"{int((total['status'] != 'ok').sum())} unreadable, "
        f"{int((total['decoder'] == 'pyav').sum())} by PyAV), {int(total['n_frames'].sum())} "
        f"frames in {time.perf_counter() - start:.1f}s",
        file=sys.stderr,
    )
