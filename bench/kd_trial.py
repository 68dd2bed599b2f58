"""Student+KD trials: the KD phase of `dkp train-student` with other tau / lambda_kd / targets,
scored on the tuning split.

For each seed (its teacher: models/seed-N/teacher.pt, from `dkp train-teacher`), each
targets mode and each (tau, lambda_kd) of the grid, trains the Student+KD network with the
stage's own code (dkp.train.kd: train.plain_student's recipe, epochs, seed and frames) and
prints its frame accuracy on data.tune_subset after the last epoch (the training log's
val_acc), the wall and CPU seconds of the phase, and, for `cached`, of computing the
teacher targets (once per seed, shared by the grid's runs). lambda_kd 0 is the Student
baseline itself (bit-identical: dkp.train.kd). Nothing is written outside a temporary
folder; the validation subset is never read. Run after `dkp frames` and the teachers, from
the project root:

    python bench/kd_trial.py --seeds 0 1 --tau 1 2 4 --lambda-kd 0 0.5 1 --targets cached
    python bench/kd_trial.py --seeds 0 1 --tau 4 --lambda-kd 1 --targets cached online
    python bench/kd_trial.py --table runs.jsonl     # the Markdown table of runs written by --json
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dkp import checkpoints, framestore, layout, params, runtime
from dkp.train import classifier, kd, student
from dkp.train.context import TrainContext
from dkp.train.data import load_subset
from dkp.train.distributed import SINGLE


def clock():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


def since(t0) -> tuple[float, float]:
    wall, cpu = clock()
    return round(wall - t0[0], 1), round(cpu - t0[1], 1)


def table(path: str) -> str:
    """Markdown: one row per (targets, tau, lambda_kd), tuning accuracy per seed and their mean,
    median CPU seconds of the phase (targets excluded) and of the cached targets."""
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    seeds = sorted({r["seed"] for r in runs})
    keys = sorted({(r["targets"], r["tau"], r["lambda_kd"]) for r in runs})
    head = ["targets", "tau", "lambda_kd", *[f"seed {s}" for s in seeds], "mean"]
    head += ["CPU s", "+ targets"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        got = {r["seed"]: r for r in runs if (r["targets"], r["tau"], r["lambda_kd"]) == k}
        accs = [got[s]["tune_acc"] if s in got else None for s in seeds]
        done = [a for a in accs if a is not None]
        cpu = statistics.median(r["phase_cpu_s"] for r in got.values())
        tgt = [r["targets_wall_cpu_s"][1] for r in got.values() if r["targets_wall_cpu_s"]]
        out.append(
            "| "
            + " | ".join(
                [k[0], f"{k[1]:g}", f"{k[2]:g}"]
                + [f"{a:.3f}" if a is not None else "" for a in accs]
                + [f"{statistics.fmean(done):.3f}", f"{cpu:.0f}"]
                + [f"{statistics.median(tgt):.0f}" if tgt else "-"]
            )
            + " |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--tau", type=float, nargs="+", default=[4.0])
    ap.add_argument("--lambda-kd", type=float, nargs="+", default=[1.0])
    ap.add_argument("--targets", nargs="+", default=["cached"], choices=["cached", "online"])
    ap.add_argument("--json", default=None, help="append one JSON line per run to this file")
    ap.add_argument("--table", default=None, help="print the Markdown table of a --json file")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return 0
    p = params.load(args.params)
    if not p["data"]["tune_subset"]:
        raise SystemExit("kd_trial: data.tune_subset is null: choices need a split never reported")
    plain = p["train"]["plain_student"]
    out = []
    for seed in args.seeds:
        device = runtime.setup(p, seed)
        classes = framestore.load_classes(p)
        t_entry = checkpoints.read(layout.teacher_checkpoint(seed), "teacher")["backbones"][
            "teacher"
        ]
        teacher = checkpoints.load_backbone(t_entry, len(classes)).to(device)
        teacher.requires_grad_(False).eval()
        train = load_subset(p, p["data"]["train_subset"], len(classes))
        tune = load_subset(p, p["data"]["tune_subset"], len(classes))
        frames, labels, _ = classifier.validation_frames(tune, p["train"]["val_frames_per_video"])
        for mode in args.targets:
            target_s = None
            kd_seed = seed + student.SEED_OFFSET["kd"]
            if mode == "cached":  # one table for the whole grid: the same frames are drawn
                drawn = classifier.drawn_rows(train, plain, p["train"]["augment"], kd_seed)
                targets = kd.cached(teacher, t_entry, train, drawn, device, SINGLE)
                t0 = clock()
                targets(drawn[:1], None)
                target_s = since(t0)
            else:
                targets = kd.online(teacher, t_entry, device)
            for tau, lam in itertools.product(args.tau, args.lambda_kd):
                t0 = clock()
                q = copy.deepcopy(p)
                q["train"]["student_kd"].update(tau=tau, lambda_kd=lam)
                with tempfile.TemporaryDirectory() as tmp:
                    ctx = TrainContext(train, frames, labels, device, Path(tmp))
                    _, rows = kd.fit(q, teacher, t_entry, ctx, kd_seed, len(classes), targets)
                wall, cpu = since(t0)
                r = {
                    "seed": seed,
                    "targets": mode,
                    "tau": tau,
                    "lambda_kd": lam,
                    "tune_acc": round(rows[-1]["val_acc"], 4),
                    "phase_wall_s": wall,
                    "phase_cpu_s": cpu,
                    "targets_wall_cpu_s": target_s,
                    "threads": p["run"]["threads"],
                }
                out.append(r)
                print(json.dumps(r), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
