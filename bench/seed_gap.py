"""The teacher / Student gap over seeds: validation frame accuracy of each, from the training stages themselves.

    .venv/bin/python bench/seed_gap.py [--params params.yaml] [--seeds 0 1 2] [--threads T]
                                       [--teacher-only] [--json out.json]

Run from a project root where `dkp frames` has run. For each seed, a scratch project
(a copy of params.yaml with `run.seed` set to it, and `run.threads` to --threads when
given; data/ linked, not copied) runs `dkp train-teacher` and then `dkp train-student`,
and the final rows of their per-epoch logs give the validation frame accuracy inside
the labelled activity of the teacher, of the Student baseline (phase "plain") and of
DSTE (phase "dkp"). One JSON line per seed. Seed 0 with the default threads is the
committed run. Several can run at once (one per core, --threads 1, disjoint --seeds).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def last_rows(log: Path) -> dict:
    """The last row of a per-epoch log for each value of its `phase` column (None where it has none)."""
    with log.open() as fh:
        return {r.get("phase"): r for r in csv.DictReader(fh)}


def run_seed(root: Path, p: dict, seed: int, threads: int | None, teacher_only: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="dkp-seed-") as tmp:
        work = Path(tmp)
        q = {**p, "run": {**p["run"], "seed": seed, **({"threads": threads} if threads else {})}}
        (work / "params.yaml").write_text(yaml.safe_dump(q, sort_keys=False))
        os.symlink(root / "data", work / "data")
        env = {**os.environ, "DKP_NO_PROGRESS": "1"}
        out = {"seed": seed, "threads": q["run"]["threads"]}
        for stage in ["train-teacher"] + ([] if teacher_only else ["train-student"]):
            t0 = time.perf_counter()
            res = subprocess.run(["dkp", stage, "--params", "params.yaml"], cwd=work, env=env,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(f"seed {seed}: dkp {stage} failed: {res.stderr.strip().splitlines()[-1:]}")
            out[f"{stage}_s"] = round(time.perf_counter() - t0, 1)
        t = last_rows(work / "results/train/teacher.csv")[None]
        out.update(teacher_val=float(t["val_acc"]), teacher_train=float(t["train_acc"]))
        if not teacher_only:
            rows = last_rows(work / "results/train/student.csv")
            s, d = rows["plain"], rows["dkp"]
            out.update(student_val=float(s["val_acc"]), student_train=float(s["train_acc"]),
                       dste_val=float(d["val_acc"]), gap=round(float(t["val_acc"]) - float(s["val_acc"]), 4))
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=None, help="run.threads for the stages (default: params)")
    ap.add_argument("--teacher-only", action="store_true", help="train the teacher alone")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    if shutil.which("dkp") is None:
        ap.error("`dkp` is not on PATH: run with .venv/bin on PATH (make install)")
    root = Path.cwd()
    if not (root / "data" / "frames").is_dir():
        ap.error("no data/frames here: run `dvc repro frames` (or `dkp frames`) first")
    p = yaml.safe_load(Path(args.params).read_text())
    out = []
    for seed in args.seeds:
        out.append(run_seed(root, p, seed, args.threads, args.teacher_only))
        print(json.dumps(out[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
