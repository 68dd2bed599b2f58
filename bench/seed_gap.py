"""The teacher / Student gap over seeds: validation frame accuracy of each, from the training logs of every seed.

    .venv/bin/python bench/seed_gap.py [--params params.yaml] [--train] [--json out.json]

Run from a project root. The pipeline trains once per seed of run.seeds (train-teacher@N,
train-student@N); the final rows of each seed's per-epoch logs, results/train/seed-N/
{teacher,student}.csv, give the validation frame accuracy inside the labelled activity of
the teacher, of the Student baseline (phase "plain"), of Student+KD (phase "kd") and of DSTE
(phase "dkp"). With --train, a seed whose logs are missing is trained first (`dkp
train-teacher --seed N`, then `dkp train-student --seed N`; needs `dkp frames` to have run).
One JSON line per seed, then one with the means over seeds.
"""  # noqa: E501 (first line is the argparse description)

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dkp import layout  # noqa: E402


def last_rows(log: Path) -> dict:
    """The last row of a per-epoch log for each value of its `phase` column (None where it has
    none)."""
    with log.open() as fh:
        return {r.get("phase"): r for r in csv.DictReader(fh)}


def train(params: str, seed: int) -> dict:
    out = {}
    for stage in ("train-teacher", "train-student"):
        t0 = time.perf_counter()
        res = subprocess.run(
            ["dkp", stage, "--params", params, "--seed", str(seed)],
            env={**os.environ, "DKP_NO_PROGRESS": "1"},
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise SystemExit(
                f"seed {seed}: dkp {stage} failed: {res.stderr.strip().splitlines()[-1:]}"
            )
        out[f"{stage}_s"] = round(time.perf_counter() - t0, 1)
    return out


def seed_row(seed: int) -> dict:
    t = last_rows(layout.train_log("teacher", seed))[None]
    rows = last_rows(layout.train_log("student", seed))
    s, d = rows["plain"], rows["dkp"]
    return {
        "seed": seed,
        "teacher_val": float(t["val_acc"]),
        "teacher_train": float(t["train_acc"]),
        "student_val": float(s["val_acc"]),
        "student_train": float(s["train_acc"]),
        "student_kd_val": float(rows["kd"]["val_acc"]) if "kd" in rows else None,
        "dste_val": float(d["val_acc"]),
        "gap": round(float(t["val_acc"]) - float(s["val_acc"]), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--train", action="store_true", help="train the seeds whose logs are missing")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    seeds = yaml.safe_load(Path(args.params).read_text())["run"]["seeds"]
    out = []
    for seed in seeds:
        timing = {}
        missing = [
            f
            for f in (layout.train_log("teacher", seed), layout.train_log("student", seed))
            if not f.exists()
        ]
        if missing and not args.train:
            ap.error(f"{missing[0]} not found: run `dvc repro` (or pass --train)")
        if missing:
            timing = train(args.params, seed)
        out.append({**seed_row(seed), **timing})
        print(json.dumps(out[-1]), flush=True)
    keys = ("teacher_val", "student_val", "dste_val", "gap")
    mean = {
        "seeds": seeds,
        **{f"mean_{k}": round(statistics.fmean(r[k] for r in out), 4) for k in keys},
    }
    print(json.dumps(mean), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": out, "mean": mean}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
