"""Does the training loader overlap reading with compute? (dkp.train.loader)

A frame store of `--videos` memory-mapped videos of 224 x 224 frames (written to a scratch
folder), epochs planned as the teacher's are (one frame per video per step, `--batch` videos
a step), and a model step of known cost: `time.sleep`, which holds no CPU, as a step on a
GPU holds little of the host. The consumer copies each step's frames once (a memcpy, as the
copy to the device reads them) before its step.

Three stores: *hot* (read once before: in the page cache), *cold* (its pages dropped with
posix_fadvise before each run, so frames come from the local disk, as a store larger than
memory does) and *slow* (hot, but every frame read first waits `--latency-us`, as random
reads from a network file system do). For each store, compute cost and number of workers
it reports the time per step and the time the consumer waited in `next()` (medians over the
steps), and the in-process load time whose sum and max with the compute bound the result.

    python bench/loader_bench.py --markdown
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dkp.train import batches, loader
from dkp.train.data import VideoSet

SIDE = 224


def make_store(
    folder: Path, videos: int, frames: int, rng: np.random.Generator, side: int = SIDE
) -> VideoSet:
    """`videos` memory-mapped videos of `frames` random frames of side x side (as dkp.frames
    stores them), opened as a VideoSet."""
    for v in range(videos):
        arr = np.lib.format.open_memmap(
            folder / f"{v}.npy", mode="w+", dtype=np.uint8, shape=(frames, side, side, 3)
        )
        arr[:] = rng.integers(0, 256, arr.shape, dtype=np.uint8)
        arr.flush()
        del arr
    return open_store(folder, videos, frames, cold=False)


class SlowStore(VideoSet):
    """A store on a slow file system: every frame read waits `latency` seconds first (a sleep,
    which holds no CPU, as waiting on a network disk does not)."""

    latency = 0.0

    def gather(self, pairs, out=None):
        time.sleep(self.latency * len(pairs))
        return super().gather(pairs, out=out)


def open_store(folder: Path, videos: int, frames: int, cold: bool) -> VideoSet:
    """The store's videos memory-mapped afresh; `cold` first drops their pages from the cache."""
    paths = [folder / f"{v}.npy" for v in range(videos)]
    if cold:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return VideoSet(
        ids=[str(v) for v in range(videos)],
        labels=np.zeros(videos, dtype=np.int64),
        durations=np.full(videos, float(frames)),
        segments=[[[0.0, float(frames)]]] * videos,
        frames=[np.load(p, mmap_mode="r") for p in paths],
        times=[np.arange(frames, dtype=np.float64)] * videos,
    )


def plan(vs: VideoSet, rng: np.random.Generator, batch: int, steps: int) -> list[dict]:
    out = []
    while len(out) < steps:
        for vids in batches.epoch_batches(rng, len(vs), batch):
            pairs = [
                (int(i), int(j))
                for i in vids
                for j in batches.tsn_indices(rng, np.arange(vs.n_frames(i)), 1)
            ]
            out.append({"x": pairs})
    return out[:steps]


def per_step(vs: VideoSet, steps: list[dict], workers: int, compute: float) -> tuple[float, float]:
    """Median seconds per step and median seconds waited in next(), after the first two steps
    (the workers' start-up). Medians: a cold store's first reads fault in whole read-ahead
    windows (0.2-0.4 s a step here), which a mean over a short run would mostly measure."""
    it = loader.steps(vs, steps, ("x",), workers, 2, torch.device("cpu"))
    took, waited = [], []
    for k in range(len(steps)):
        a = time.perf_counter()
        step = next(it)
        b = time.perf_counter()
        step["x"].clone()
        if compute:
            time.sleep(compute)
        if k >= 2:
            took.append(time.perf_counter() - a)
            waited.append(b - a)
    return float(np.median(took)), float(np.median(waited))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=256)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--compute-ms", type=float, nargs="+", default=[0.0, 10.0, 25.0])
    ap.add_argument("--latency-us", type=float, default=300.0, help="per frame read, *slow* store")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # on the disk, not a tmpfs
        folder = Path(tmp)
        make_store(folder, args.videos, args.frames, rng)
        steps = plan(
            open_store(folder, args.videos, args.frames, False), rng, args.batch, args.steps
        )
        for cache in ("hot", "cold", "slow"):
            load = None
            for ms in args.compute_ms:
                for w in args.workers:
                    vs = open_store(folder, args.videos, args.frames, cache == "cold")
                    if cache == "slow":
                        vs = SlowStore(**{k: v for k, v in vars(vs).items() if k != "offsets"})
                        vs.latency = args.latency_us / 1e6
                    if cache != "cold":
                        per_step(vs, steps, 0, 0.0)
                    step, wait = per_step(vs, steps, w, ms / 1e3)
                    del vs
                    gc.collect()
                    if w == 0 and ms == 0.0:
                        load = step
                    rows.append((cache, ms, w, step, wait, load))
    lines = [
        f"{args.videos} videos x {args.frames} frames of {SIDE}x{SIDE}, "
        f"{args.batch} frames a step, medians of {args.steps - 2} steps; compute = a sleep; "
        f"load = 0 workers, no compute; slow = {args.latency_us:.0f} us a frame read",
        "",
        "| cache | compute, ms | workers | ms/step | waited in next(), ms/step | frames/s | "
        "load + compute | max(load, compute) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cache, ms, w, step, wait, load in rows:
        lines.append(
            f"| {cache} | {ms:.0f} | {w} | {step * 1e3:.1f} | {wait * 1e3:.1f} | "
            f"{args.batch / step:,.0f} | {(load + ms / 1e3) * 1e3:.1f} | "
            f"{max(load, ms / 1e3) * 1e3:.1f} |"
        )
    print("\n".join(lines) if args.markdown else "\n".join(lines[4:]))


if __name__ == "__main__":
    main()
