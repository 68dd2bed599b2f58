"""`dkp features`: cache each backbone's pooled feature of every frame of the evaluated videos.

Every sweep configuration then samples from this cache instead of rerunning the
backbones. `--seed N` embeds with seed N's checkpoints; the cache is split like the frame
store, one folder per frame shard (data/features/seed-N/shard-<i>/, dkp.layout), so a
cluster runs one job per shard (`--shard i/N`). Each shard folder is written atomically:
- <backbone>.npy: float32 (N_frames, D), rows of a video contiguous;
- times.npy: float64 (N_frames,) frame timestamps in seconds;
- index.csv: id, offset, n_frames, duration, label_index (sorted by id);
- meta.json: backbone names and feature sizes, counts;
- costs.json: the MACs of these modules (dkp.flops.CostModel.counts), counted once here so the
  sweep's many jobs read them instead of each starting torch's counter.
Feature files are filled in place, a batch of `features.batch_frames` frames at a time,
each write through a memory map opened for that batch only, so neither the frames nor the
features written sit in memory all at once. dkp.feature_cache reads the shards as one cache
ordered by id.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import framestore, layout, runtime
from .atomic import atomic_dir, clean_stale_temps, write_json
from .errors import DkpError


def evaluated_videos(p: dict) -> pd.DataFrame:
    """Videos of data.val_subset ok in the manifest and the frame index, with frames, sorted by
    id."""
    return framestore.available(p, p["data"]["val_subset"])


def _frame_batches(p: dict, videos: pd.DataFrame, batch_frames: int):
    """Yield (row offset, uint8 frames (b, H, W, 3), float64 times (b,)) in cache order,
    packing frames of consecutive videos into batches of at most batch_frames."""
    buf_f, buf_t, start, filled = [], [], 0, 0
    for vid, expected in zip(videos["id"], videos["n_frames"]):
        frames, times = framestore.load(p, vid)
        if len(frames) != int(expected) or len(times) != int(expected):
            raise DkpError(
                f"frames of {vid}: index says {int(expected)} frames, found {len(frames)} "
                f"(rerun `dkp frames`)"
            )
        pos = 0
        while pos < len(frames):
            take = min(batch_frames - filled, len(frames) - pos)
            buf_f.append(np.asarray(frames[pos : pos + take]))
            buf_t.append(np.asarray(times[pos : pos + take], dtype=np.float64))
            pos += take
            filled += take
            if filled == batch_frames:
                yield start, np.concatenate(buf_f), np.concatenate(buf_t)
                start += filled
                buf_f, buf_t, filled = [], [], 0
    if filled:
        yield start, np.concatenate(buf_f), np.concatenate(buf_t)


def build_index(videos: pd.DataFrame) -> pd.DataFrame:
    """index.csv rows: each video's first row in the feature arrays and its frame count."""
    n = videos["n_frames"].to_numpy(dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]]) if len(n) else np.zeros(0, dtype=np.int64)
    return pd.DataFrame(
        {
            "id": videos["id"].astype(str).to_numpy(),
            "offset": offsets.astype(np.int64),
            "n_frames": n,
            "duration": videos["duration"].astype(float).to_numpy(),
            "label_index": videos["label_index"].astype(np.int64).to_numpy(),
        }
    )


def _write_rows(path: Path, start: int, stop: int, rows: np.ndarray) -> None:
    """rows -> rows start..stop-1 of the .npy array at path, through a map opened for this write
    only, so the pages written leave resident memory and the stage's peak stays flat in the cache
    size."""
    arr = np.load(path, mmap_mode="r+")
    arr[start:stop] = rows
    arr.flush()
    del arr


def build_cache(
    p: dict, videos: pd.DataFrame, predictor, folder: str | Path, progress: bool = False
) -> dict[str, int]:
    """Embed every frame of `videos` with each of predictor.backbone_names into `folder`
    (atomically); return the feature size per backbone."""
    import torch

    index = build_index(videos)
    total = int(index["n_frames"].sum())
    names = list(predictor.backbone_names)
    folder = Path(folder)
    clean_stale_temps(folder.parent, owner=folder.name)
    with atomic_dir(folder) as tmp:
        dims: dict[str, int] = {}
        del_map = np.lib.format.open_memmap(
            tmp / "times.npy", mode="w+", dtype=np.float64, shape=(total,)
        )
        del del_map  # the file exists with its header; batches write through _write_rows
        bar = tqdm(total=total, unit="frame", desc="features", disable=not progress)
        with torch.inference_mode():
            for start, frames, t in _frame_batches(p, videos, p["features"]["batch_frames"]):
                stop = start + len(frames)
                for name in names:
                    out = predictor.embed(name, frames)
                    out = (
                        out.detach().float().cpu().numpy()
                        if torch.is_tensor(out)
                        else np.asarray(out)
                    )
                    if not np.isfinite(out).all():
                        raise DkpError(
                            f"backbone {name} gives non-finite features (frames "
                            f"{start}..{stop - 1} of the cache): its checkpoint holds NaN/inf "
                            "weights; rerun its training"
                        )
                    if (
                        name not in dims
                    ):  # the feature size is known only after a first forward pass
                        dims[name] = int(out.shape[1])
                        # creates the full-size file; the map is dropped at once, rows are written
                        # per batch
                        np.lib.format.open_memmap(
                            tmp / f"{name}.npy",
                            mode="w+",
                            dtype=np.float32,
                            shape=(total, out.shape[1]),
                        )
                    _write_rows(tmp / f"{name}.npy", start, stop, out)
                _write_rows(tmp / "times.npy", start, stop, t)
                bar.update(len(frames))
        bar.close()
        # repr floats: exact round trip
        index.to_csv(tmp / "index.csv", index=False, lineterminator="\n")
        write_json(tmp / "meta.json", {"backbones": dims, "videos": len(index), "frames": total})
        write_json(tmp / "costs.json", predictor.cost().counts())
    return dims


def build_shards(
    p: dict,
    videos: pd.DataFrame,
    predictor,
    root: str | Path,
    shards: list[int],
    progress: bool = False,
) -> None:
    """build_cache for the videos of each frame shard in `shards`, into root/shard-<i>/."""
    of = np.array(
        [framestore.shard_of(v, p["frames"]["shards"]) for v in videos["id"]], dtype=np.int64
    )
    for i in shards:
        part = videos[of == i].reset_index(drop=True)
        folder = Path(root) / layout.shard_name(i)
        dims = build_cache(p, part, predictor, folder, progress=progress)
        print(
            f"features: shard {i}: {len(part)} videos, {int(part['n_frames'].sum())} frames, "
            f"feature sizes {dims} -> {folder}/"
        )


def run(p: dict, args) -> None:
    from .inference import Predictor

    device = runtime.setup(p, args.seed)
    videos = evaluated_videos(p)
    if videos.empty:
        raise DkpError(
            f"no video of subset {p['data']['val_subset']!r} has extracted frames "
            f"(run `dkp data` and `dkp frames` first)"
        )
    shards = framestore.selected_shards(p, getattr(args, "shard", None))
    root = layout.features_dir(args.seed)
    if len(shards) == p["frames"]["shards"]:  # a full run drops what an earlier layout left
        keep = {layout.features_shard_dir(args.seed, i).name for i in shards}
        for old in root.glob("*") if root.is_dir() else []:
            if old.name not in keep:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    build_shards(
        p,
        videos,
        Predictor.load(p, device, args.seed),
        root,
        shards,
        progress=not runtime.progress_disabled(),
    )
