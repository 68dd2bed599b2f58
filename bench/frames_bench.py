"""Benchmark 1: frame extraction rate of `dkp.frames.extract` (decord) vs the ffmpeg CLI.

Both decode the same videos at the same fps and output size, one process each
(ffmpeg with -threads 1, decord with one thread), interleaved video by video so
machine noise hits both alike. Reports frames out per second, video seconds per
second and the ratio dkp / ffmpeg (goal: >= 0.8).

    .venv/bin/python bench/frames_bench.py --params params.yaml --videos 60 [--json out.json]

Run from a folder where `dkp synthesize && dkp data` have run (reads data/manifest.csv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault("DECORD_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from dkp import framestore  # noqa: E402
from dkp.frames import extract, output_shape  # noqa: E402


def ffmpeg_decode(
    path: str, fps: float, size: int, crop: int | None, shape: tuple[int, int]
) -> int:
    """Decode with the ffmpeg CLI to raw RGB on a pipe; returns the number of frames."""
    h, w = shape
    rh, rw, fh, fw = output_shape(h, w, size, crop)
    vf = f"fps={fps},scale={rw}:{rh}:flags=bilinear"
    if crop:
        vf += f",crop={fw}:{fh}"
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-threads",
            "1",
            "-i",
            path,
            "-vf",
            vf,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return len(out) // (fh * fw * 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--videos", type=int, default=60, help="videos to decode (spread over lengths)")
    ap.add_argument("--json", default=None, help="write the figures here too")
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        print("ffmpeg not found: apt-get install ffmpeg", file=sys.stderr)
        return 2
    with open(args.params) as fh:
        p = yaml.safe_load(fh)
    fr = p["frames"]
    man = framestore.load_manifest(p)
    man = man[man.status == "ok"].sort_values("duration")
    pick = man.iloc[np.linspace(0, len(man) - 1, min(args.videos, len(man))).round().astype(int)]
    t_dkp = t_ff = 0.0
    n_dkp = n_ff = 0
    seconds = float(pick.duration.sum())
    for path in pick.path:
        t0 = time.perf_counter()
        frames, _ = extract(path, fr["fps"], fr["size"], fr["crop"])
        t_dkp += time.perf_counter() - t0
        n_dkp += len(frames)
        import decord

        vr = decord.VideoReader(path)
        shape = vr[0].shape[:2]
        del vr
        t0 = time.perf_counter()
        n_ff += ffmpeg_decode(path, fr["fps"], fr["size"], fr["crop"], shape)
        t_ff += time.perf_counter() - t0
    res = {
        "videos": len(pick),
        "video_seconds": round(seconds, 1),
        "dkp_frames": n_dkp,
        "ffmpeg_frames": n_ff,
        "dkp_s": round(t_dkp, 3),
        "ffmpeg_s": round(t_ff, 3),
        "dkp_frames_per_s": round(n_dkp / t_dkp, 1),
        "ffmpeg_frames_per_s": round(n_ff / t_ff, 1),
        "dkp_video_s_per_s": round(seconds / t_dkp, 1),
        "ffmpeg_video_s_per_s": round(seconds / t_ff, 1),
        "ratio_video_s": round((seconds / t_dkp) / (seconds / t_ff), 3),
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
