"""Does the training loader overlap reading with compute? (dkp.train.loader)

A frame store of `--videos` memory-mapped videos of 224 x 224 frames (written to a scratch
folder, then read hot from the page cache), epochs planned as the teacher's are (one frame
per video per step, `--batch` videos a step), and a model step of known cost: `time.sleep`,
which holds no CPU, as a step on a GPU holds little of the host. For each number of workers
it reports the time per step against the load alone, the compute alone, their sum and their
max, and the host-side read rate in frames/s.

    python bench/loader_bench.py --markdown
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dkp.train import batches, loader
from dkp.train.data import VideoSet

SIDE = 224


def make_store(folder: Path, videos: int, frames: int, rng: np.random.Generator) -> VideoSet:
    arrays = []
    for v in range(videos):
        path = folder / f"{v}.npy"
        arr = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.uint8, shape=(frames, SIDE, SIDE, 3)
        )
        arr[:] = rng.integers(0, 256, arr.shape, dtype=np.uint8)
        arr.flush()
        del arr
        arrays.append(np.load(path, mmap_mode="r"))
    return VideoSet(
        ids=[str(v) for v in range(videos)],
        labels=np.zeros(videos, dtype=np.int64),
        durations=np.full(videos, float(frames)),
        segments=[[[0.0, float(frames)]]] * videos,
        frames=arrays,
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


def per_step(vs: VideoSet, steps: list[dict], workers: int, compute: float) -> float:
    it = loader.steps(vs, steps, ("x",), workers, 2, torch.device("cpu"))
    t0 = None
    for k, step in enumerate(it):
        if k == 1:  # after the workers' start-up and the first step
            t0 = time.perf_counter()
        step["x"].sum()  # touch the batch, as the transfer to the device would
        if compute:
            time.sleep(compute)
    return (time.perf_counter() - t0) / (len(steps) - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        vs = make_store(Path(tmp), args.videos, args.frames, rng)
        steps = plan(vs, rng, args.batch, args.steps)
        per_step(vs, steps, 0, 0.0)  # warm the page cache
        load = per_step(vs, steps, 0, 0.0)
        compute = load  # the case where overlap matters most: load = compute
        rows = []
        for w in args.workers:
            load_w = per_step(vs, steps, w, 0.0)
            both = per_step(vs, steps, w, compute)
            rows.append((w, load_w, both))
    frames = args.batch
    lines = [
        f"{args.videos} videos x {args.frames} frames of {SIDE}x{SIDE} (hot page cache), {frames} "
        f"frames a step; model step = sleep({compute * 1e3:.1f} ms) = the in-process load time",
        "",
        "| workers | load only, ms/step | frames/s read | load + compute, ms/step | sum | max |",
        "|---|---|---|---|---|---|",
    ]
    for w, load_w, both in rows:
        lines.append(
            f"| {w} | {load_w * 1e3:.1f} | {frames / load_w:,.0f} | {both * 1e3:.1f} | "
            f"{(load + compute) * 1e3:.1f} | {max(load, compute) * 1e3:.1f} |"
        )
    print("\n".join(lines) if args.markdown else "\n".join(lines[4:]))


if __name__ == "__main__":
    main()
