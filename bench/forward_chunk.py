"""Frames per forward pass of the frozen networks: speed by pass size, and whether a frame's
features depend on the pass it is in.

    .venv/bin/python bench/forward_chunk.py [--params params.yaml] [--seed 0] [--frames 2048]
                                            [--sizes 64 128 256] [--reps 5] [--markdown]

Run from a project root where `dkp train-student --seed N` has run (the default data). Every
backbone the sweep reads (dkp.inference.Predictor) embeds the first --frames validation frames
(dkp.features' order) through dkp.models.embed_frames at each pass size; sizes alternate within
each repetition, so a drift of the machine's speed touches all of them alike. Reported: the
median milliseconds a frame per backbone and size, and whether the features equal those of the
largest size bit for bit (and of one frame a pass, the case dkp.models.chunk_bounds avoids).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dkp import params, runtime
from dkp.features import _frame_batches, evaluated_videos
from dkp.inference import Predictor


def measure(pred: Predictor, frames: np.ndarray, sizes: list[int], reps: int) -> dict:
    out = {}
    with torch.inference_mode():
        for name in pred.backbone_names:
            ref = pred.embed(name, frames, batch=max(sizes)).numpy()
            alone = pred.embed(name, frames[:8], batch=1).numpy()
            times = {b: [] for b in sizes}
            same = {
                b: np.array_equal(pred.embed(name, frames, batch=b).numpy(), ref) for b in sizes
            }
            for _ in range(reps):
                for b in sizes:
                    t = time.perf_counter()
                    pred.embed(name, frames, batch=b)
                    times[b].append((time.perf_counter() - t) / len(frames) * 1e3)
            out[name] = {
                "ms_per_frame": {b: statistics.median(v) for b, v in times.items()},
                "equal_to_largest": same,
                "one_frame_a_pass_equal": bool(np.array_equal(alone, ref[:8])),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    p = params.load(args.params)
    device = runtime.setup(p, args.seed)
    pred = Predictor.load(p, device, args.seed)
    frames = next(_frame_batches(p, evaluated_videos(p), args.frames))[1]
    res = measure(pred, frames, sorted(args.sizes), args.reps)
    sizes = sorted(args.sizes)
    if args.markdown:
        print(
            f"| backbone | {' | '.join(f'{b} a pass, ms/frame' for b in sizes)} | bitwise equal |"
        )
        print(f"|---|{'---:|' * len(sizes)}---|")
        for name, r in res.items():
            ms = " | ".join(f"{r['ms_per_frame'][b]:.3f}" for b in sizes)
            eq = "yes" if all(r["equal_to_largest"].values()) else "no"
            one = "" if r["one_frame_a_pass_equal"] else " (one frame a pass: no)"
            print(f"| {name} | {ms} | {eq}{one} |")
        print(
            f"\n{len(frames)} frames, {args.reps} repetitions, torch threads "
            f"{torch.get_num_threads()}, device {device}"
        )
    else:
        print(res)


if __name__ == "__main__":
    main()
