"""The JPEG frame store (frames.format: jpeg): its size, its decode rate, the training loader's rate
from it, and what it changes in the results.

    python bench/jpeg_bench.py store --markdown          # bytes a frame, PSNR, encode/decode ms
    python bench/jpeg_bench.py loader --markdown         # dkp.train.loader from a cold JPEG store
    python bench/jpeg_bench.py compare RAW JPEG          # two project roots that ran the pipeline

*store*: 224-px frames as dkp.frames makes them (short side 256, centre 224) from windows of the
natural photographs shipped with scikit-learn and matplotlib (dev dependencies), encoded by
dkp.framestore.encode_jpeg at each quality and decoded back, one process.
*loader*: a store of such frames written as dkp.frames writes it (one .jpeg and offsets file a
video), read through dkp.train.loader (the teacher's plan: one frame a video a step) with 0..W
workers and no compute, its pages dropped before each run (posix_fadvise), so every read comes
from the disk, as from a store larger than the page cache; frames/s, and frames/s a worker.
*compare*: results/curves.csv of two runs of the same parameters but frames.format: for each
configuration, |mAP(jpeg) - mAP(raw)| against the raw run's 95 % interval width.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dkp import framestore


def photo_frames(n: int, seed: int = 0) -> np.ndarray:
    """n uint8 (224, 224, 3) frames: random windows of the sample photographs, short side resized
    to 256 (bilinear), centre 224, as dkp.frames.resize_crop makes them."""
    import matplotlib
    import sklearn.datasets
    from PIL import Image

    from dkp.frames import resize_crop

    paths = list(sklearn.datasets.load_sample_images().filenames)
    paths.append(Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = photos[k % len(photos)]
        h, w = img.shape[:2]
        s = rng.uniform(0.5, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        window = np.ascontiguousarray(img[None, y : y + ch, x : x + cw])
        out.append(resize_crop(window, 256, 224)[0])
    return np.stack(out)


def store(args) -> list[str]:
    frames = photo_frames(args.frames)
    lines = [
        f"{len(frames)} frames of 224 px from the sample photographs; one process; CPU times",
        "",
        "| quality | kB a frame (mean / p90) | PSNR, dB | mean abs error | encode, ms | "
        "decode, ms | decoded frames/s a core |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in args.qualities:
        t0 = time.process_time()
        data, off = framestore.encode_jpeg(frames, q)
        enc = (time.process_time() - t0) / len(frames)
        t0 = time.process_time()
        dec = np.stack(
            [framestore.decode_jpeg(data[off[k] : off[k + 1]]) for k in range(len(frames))]
        )
        dcost = (time.process_time() - t0) / len(frames)
        err = dec.astype(float) - frames
        psnr = 10 * np.log10(255**2 / np.mean(err**2))
        sizes = np.diff(off) / 1000
        lines.append(
            f"| {q} | {sizes.mean():.1f} / {np.percentile(sizes, 90):.1f} | {psnr:.1f} | "
            f"{np.abs(err).mean():.2f} | {enc * 1e3:.2f} | {dcost * 1e3:.2f} | {1 / dcost:,.0f} |"
        )
    return lines


def drop_pages(folder: Path) -> None:
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cpu(proc, children: bool = False) -> float:
    """CPU seconds of a process, or of its live children (the loader's workers)."""
    if not children:
        t = proc.cpu_times()
        return t.user + t.system
    return sum(sum(c.cpu_times()[:2]) for c in proc.children())


def loader(args) -> list[str]:
    import psutil
    import torch

    from dkp.train import batches
    from dkp.train import loader as loader_mod
    from dkp.train.data import VideoSet

    rng = np.random.default_rng(0)
    base = photo_frames(256)
    lines = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # on the disk, not a tmpfs
        folder = Path(tmp)
        nbytes = 0
        for v in range(args.videos):
            data, off = framestore.encode_jpeg(base[rng.integers(0, len(base), args.per_video)], 90)
            (folder / f"{v}.jpeg").write_bytes(data)
            np.save(folder / f"{v}.j.npy", off)
            nbytes += len(data)

        def videos():
            return VideoSet(
                ids=[str(v) for v in range(args.videos)],
                labels=np.zeros(args.videos, dtype=np.int64),
                durations=np.full(args.videos, float(args.per_video)),
                segments=[[[0.0, float(args.per_video)]]] * args.videos,
                frames=[
                    framestore.JpegFrames(folder / f"{v}.jpeg", np.load(folder / f"{v}.j.npy"))
                    for v in range(args.videos)
                ],
                times=[np.arange(args.per_video, dtype=np.float64)] * args.videos,
            )

        vs = videos()
        steps = []
        while len(steps) < args.steps:
            for vids in batches.epoch_batches(rng, len(vs), args.batch):
                steps.append({"x": [(int(i), int(rng.integers(args.per_video))) for i in vids]})
        steps = steps[: args.steps]
        lines += [
            f"{args.videos} videos x {args.per_video} JPEG frames (q90, {nbytes / 2**20:.0f} MB), "
            f"{args.batch} frames a step, {args.steps} steps, pages dropped before each run; "
            f"{os.cpu_count()} cores",
            "",
            "| workers | frames/s | frames/s a worker | ms a step | CPU ms a frame read |",
            "|---|---|---|---|---|",
        ]
        me = psutil.Process()
        for w in args.workers:
            drop_pages(folder)
            vs = videos()
            c0 = _cpu(me)
            it = loader_mod.steps(vs, steps, ("x",), w, 2, torch.device("cpu"))
            next(it)  # the workers' start-up
            t0 = time.perf_counter()
            for _ in range(len(steps) - 2):
                next(it)["x"].clone()
            dt = (time.perf_counter() - t0) / (len(steps) - 2)
            # CPU time of the reads: the workers' (every step is read by now), or with none the
            # process's own, which includes the consumer's copies
            cpu = _cpu(me, children=True) if w else _cpu(me) - c0
            cpu /= (len(steps) - (0 if w else 1)) * args.batch
            for _ in it:
                pass
            rate = args.batch / dt
            lines.append(
                f"| {w} | {rate:,.0f} | {rate / max(w, 1):,.0f} | {dt * 1e3:.1f} | "
                f"{cpu * 1e3:.2f} |"
            )
    return lines


def compare(args) -> list[str]:
    import pandas as pd

    raw = pd.read_csv(Path(args.raw) / "results/curves.csv").set_index("name")
    jpeg = pd.read_csv(Path(args.jpeg) / "results/curves.csv").set_index("name")
    d = (jpeg["mAP"] - raw["mAP"]).abs()
    width = raw["mAP_hi"] - raw["mAP_lo"]
    share = d / width
    lines = [
        f"{len(d)} configurations; |mAP(jpeg) - mAP(raw)| against the raw run's interval width",
        "",
        "| | median | max | configuration at max |",
        "|---|---|---|---|",
        f"| mAP points | {d.median():.2f} | {d.max():.2f} | {d.idxmax()} |",
        f"| share of the interval width | {share.median():.2f} | {share.max():.2f} | "
        f"{share.idxmax()} |",
        "",
        f"configurations that moved by less than their interval width: {(share < 1).sum()} "
        f"of {len(d)}",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("store")
    s.add_argument("--frames", type=int, default=120)
    s.add_argument("--qualities", type=int, nargs="+", default=[75, 85, 90, 95])
    l_ = sub.add_parser("loader")
    l_.add_argument("--videos", type=int, default=256)
    l_.add_argument("--per-video", type=int, default=40)
    l_.add_argument("--batch", type=int, default=128)
    l_.add_argument("--steps", type=int, default=40)
    l_.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    c = sub.add_parser("compare")
    c.add_argument("raw")
    c.add_argument("jpeg")
    for p in (s, l_, c):
        p.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    lines = {"store": store, "loader": loader, "compare": compare}[args.what](args)
    print("\n".join(lines if args.markdown else lines[4:]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
