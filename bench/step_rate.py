"""Optimiser-step rate of a backbone against frames per step: forward, cross-entropy, backward
and AdamW on random frames already in memory (no data path), frames per second.

    .venv/bin/python bench/step_rate.py [--params params.yaml] [--net teacher|student]
                                        [--batches 32 64 128] [--reps 3] [--threads T]

What a larger training batch would buy per frame (bench/README.md, "End to end"). The data
path's own per-frame cost (bench/train_bench.py) is not in it.
"""

from __future__ import annotations

import argparse
import time

import torch
import yaml

from dkp.models import build_backbone


def step_rate(model, opt, frames: int, size: int, classes: int, steps: int) -> float:
    """Frames per second over `steps` timed steps of `frames` frames, after 3 untimed ones."""
    x = torch.randn(frames, 3, size, size)
    y = torch.randint(0, classes, (frames,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return frames * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--net", choices=("teacher", "student"), default="teacher")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default run.threads)")
    args = ap.parse_args(argv)
    p = yaml.safe_load(open(args.params))
    torch.set_num_threads(args.threads or p["run"]["threads"])
    classes = p["data"]["synthetic"]["num_classes"]
    cfg = p[args.net]
    model = build_backbone(cfg, classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    for rep in range(args.reps):
        rates = {
            b: step_rate(model, opt, b, cfg["input_size"], classes, max(8, 640 // b))
            for b in args.batches
        }
        print(f"{args.net} rep {rep}: " + ", ".join(f"{b}: {r:.0f}" for b, r in rates.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
