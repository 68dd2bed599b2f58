"""Stress the synthetic generator's determinism: render and encode every video many times.

Fresh processes (``--processes``, ``--parallel`` at a time, ``--burn`` busy-loop processes
beside them for load) each render and encode every video of a parameter file ``--reps``
times in their own shuffled order, through the generator's own render and write
functions. Every frame array and every MP4 must come out byte-identical across all of
them. Prints one summary line and exits 1 on any mismatch.

    python bench/synth_stress.py --params tests/params-tiny.yaml --processes 8 --parallel 4 --reps
                                 10
    python bench/synth_stress.py ... --x264-params bframes=0   # x264's own kernels, for comparison
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def worker(params: str, seed: int, reps: int, x264_params: str | None) -> dict:
    """Per video id: the digests of every render and every encode this process made."""
    from dkp.synthetic import render, writer
    from dkp.synthetic.spec import make_specs

    if x264_params is not None:
        writer.X264_OPTIONS["x264-params"] = x264_params
    with open(params) as fh:
        p = yaml.safe_load(fh)
    specs = make_specs(p["data"]["synthetic"], p["data"]["train_subset"], p["data"]["val_subset"])
    order = random.Random(seed)
    out: dict = defaultdict(lambda: {"frames": [], "mp4": []})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "video.mp4"
        for _ in range(reps):
            order.shuffle(specs)
            for spec in specs:
                frames = render.render_frames(spec, np.arange(spec.n_frames))
                writer.write_mp4(path, frames, spec.fps)
                out[spec.vid]["frames"].append(_digest(frames.tobytes()))
                out[spec.vid]["mp4"].append(_digest(path.read_bytes()))
    return dict(out)


def summarise(runs: list[dict]) -> dict:
    """Counts of renders and encodes, and of those that differ from their video's most common
    bytes."""
    merged: dict = defaultdict(lambda: {"frames": Counter(), "mp4": Counter()})
    for run in runs:
        for vid, kinds in run.items():
            for kind, digests in kinds.items():
                merged[vid][kind].update(digests)
    total = {"frames": 0, "mp4": 0}
    odd = {"frames": 0, "mp4": 0}
    odd_videos = set()
    for vid, kinds in merged.items():
        for kind, counts in kinds.items():
            n = sum(counts.values())
            total[kind] += n
            odd[kind] += n - counts.most_common(1)[0][1]
            if len(counts) > 1:
                odd_videos.add(vid)
    return {
        "videos": len(merged),
        "renders": total["frames"],
        "encodes": total["mp4"],
        "renders_differing": odd["frames"],
        "encodes_differing": odd["mp4"],
        "videos_differing": sorted(odd_videos),
    }


def _burner() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="tests/params-tiny.yaml")
    ap.add_argument("--processes", type=int, default=8, help="fresh worker processes in all")
    ap.add_argument("--parallel", type=int, default=4, help="workers running at once")
    ap.add_argument(
        "--reps", type=int, default=10, help="renders and encodes of each video per worker"
    )
    ap.add_argument("--burn", type=int, default=1, help="busy-loop processes for load")
    ap.add_argument("--x264-params", default=None, help="override the writer's x264-params")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        json.dump(worker(args.params, args.worker, args.reps, args.x264_params), sys.stdout)
        return 0
    cmd = [sys.executable, __file__, "--params", args.params, "--reps", str(args.reps)]
    if args.x264_params is not None:
        cmd += ["--x264-params", args.x264_params]
    burners = [_burner() for _ in range(args.burn)]
    runs = []
    try:
        seeds = list(range(args.processes))
        while seeds:
            batch, seeds = seeds[: args.parallel], seeds[args.parallel :]
            procs = [
                subprocess.Popen(
                    cmd + ["--worker", str(s)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=dict(os.environ),
                )
                for s in batch
            ]
            for proc in procs:
                out, _ = proc.communicate()
                if proc.returncode:
                    raise SystemExit(
                        f"synth_stress: a worker failed with exit code {proc.returncode}"
                    )
                runs.append(json.loads(out))
    finally:
        for b in burners:
            b.kill()
            b.wait()
    s = summarise(runs)
    print(json.dumps(s))
    return 1 if s["renders_differing"] or s["encodes_differing"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
