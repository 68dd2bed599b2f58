"""The teacher / Student gap over seeds: validation frame accuracy of each, trained as the stages train them.

    .venv/bin/python bench/seed_gap.py [--params params.yaml] [--seeds 0 1 2] [--nets teacher,plain]
                                       [--threads 1] [--json out.json]

Run from a project root where `dkp frames` has run. For each seed, `run.seed` is set
to it and the network is trained by the stage's own function (dkp.train.classifier.
train_classifier, with the seed offsets of `dkp train-teacher` and the Student phase
of `dkp train-student`; checkpoints go to a temporary folder), then its final
validation frame accuracy inside the labelled activity is printed, one JSON line per
(net, seed). Seed 0 is the stage's default run. Run several at once (one per core,
`--threads 1`) with disjoint --seeds or --nets: the figures do not depend on it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DKP_NO_PROGRESS", "1")


def train_one(p: dict, net_name: str, seed: int) -> dict:
    from dkp import framestore, runtime
    from dkp.models import build_backbone
    from dkp.train import classifier, loop, student, teacher
    from dkp.train.data import load_subset

    p = {**p, "run": {**p["run"], "seed": seed}}
    device = runtime.setup(p)
    loop.make_deterministic(device)
    classes = framestore.load_classes(p)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    val = load_subset(p, p["data"]["val_subset"], len(classes))
    vf, vl, _ = classifier.validation_frames(val, p["train"]["val_frames_per_video"])
    if net_name == "teacher":
        net, cfg, seed = p["teacher"], p["train"]["teacher"], seed + teacher.SEED_OFFSET
    else:
        net, cfg, seed = p["student"], p["train"]["plain_student"], seed + student.SEED_OFFSET["plain"]
    runtime.seed_everything(seed)
    model = build_backbone(net, len(classes)).to(device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = classifier.train_classifier(model, net, cfg, p["train"]["augment"], train, vf, vl, device,
                                           Path(tmp), net_name, seed)
    return {"net": net_name, "seed": p["run"]["seed"], "train_videos": len(train), "val_frames": len(vl),
            "val_acc": round(rows[-1]["val_acc"], 4), "train_acc": round(rows[-1]["train_acc"], 4),
            "epochs": len(rows), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--nets", default="teacher,plain", help="comma-separated: teacher, plain")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one per process on a shared machine)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dkp import params

    p = params.load(args.params)
    p["run"]["threads"] = args.threads
    out = []
    for net_name in args.nets.split(","):
        if net_name not in ("teacher", "plain"):
            ap.error(f"--nets: unknown network {net_name!r} (teacher, plain)")
        for seed in args.seeds:
            out.append(train_one(p, net_name, seed))
            print(json.dumps(out[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
