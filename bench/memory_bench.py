"""Benchmark 5: peak resident memory of every stage, and how features / sweep grow with the videos.

    .venv/bin/python bench/memory_bench.py stages --root DIR [--stages synthesize,data,...] [--json
                                           out.json]
    .venv/bin/python bench/memory_bench.py scale --root DIR --work WORKDIR [--factors 1,2,4]
                                           [--stages features,sweep] [--json out.json]

`stages`: runs `dkp <stage> --params params.yaml` in DIR (a scratch project root: never a
checkout whose outputs you want to keep; per-seed stages with `--seed` the first of
run.seeds: one seed's job is what a runner schedules), in pipeline order, each under
`/usr/bin/time -v`; reports "Maximum resident set size" (GNU time: the largest single
process of the tree, the stage or one of its workers), wall and CPU seconds. While a
stage runs, its process tree is sampled every 0.1 s (psutil) for the split of the
largest process's resident memory into anonymous memory (heap: arrays, tensors) and
file-backed pages (code, libraries, memory-mapped .npy files: page cache the kernel
may drop, counted in RSS while mapped), and for the tree's total.
`scale`: for each factor F, a copy WORKDIR/x<F> of DIR's params.yaml with
data.synthetic.val_per_class multiplied by F (the training set unchanged; for F = 1 the
data of DIR is copied instead of regenerated) and DIR's models/ (memory does not
depend on the weights); runs synthesize, data, frames (F > 1), then the --stages
(default features, sweep) under the same measurement, and reports the peaks
against the number of validation videos and frames.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dkp.cli import PIPELINE

STAGES = list(PIPELINE)
DKP = str(Path(sys.executable).with_name("dkp"))
PER_SEED = (
    "train-teacher",
    "train-student",
    "features",
    "sweep",
)  # run with --seed <first of run.seeds>


def _sample(proc, peak: dict) -> None:
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    total = 0
    for q in tree:
        try:
            if q.pid == proc.pid and q.name() == "time":
                continue
            m = q.memory_info()
        except psutil.Error:
            continue
        total += m.rss
        anon, filed = m.rss - m.shared, m.shared
        if m.rss > peak.get("rss", 0):
            peak.update(rss=m.rss, anon_at_peak=anon, file_at_peak=filed)
        peak["anon_max"] = max(peak.get("anon_max", 0), anon)
        peak["file_max"] = max(peak.get("file_max", 0), filed)
    peak["tree_max"] = max(peak.get("tree_max", 0), total)


def first_seed(cwd: Path) -> int:
    """The seed the per-seed stages are measured with: the first of run.seeds."""
    import yaml

    return yaml.safe_load((cwd / "params.yaml").read_text())["run"]["seeds"][0]


def measure(stage: str, cwd: Path, log: Path) -> dict:
    """Run one stage under /usr/bin/time -v; its peak RSS, times and the sampled split."""
    env = {**os.environ, "DKP_NO_PROGRESS": "1"}
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, open(log, "a") as out:
        out.write(f"\n=== dkp {stage} ({cwd})\n")
        out.flush()
        seed = ["--seed", str(first_seed(cwd))] if stage in PER_SEED else []
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", tf.name, DKP, stage, "--params", "params.yaml", *seed],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        peak: dict = {}
        while proc.poll() is None:
            _sample(proc, peak)
            time.sleep(0.1)
        text = Path(tf.name).read_text()
    if proc.returncode:
        raise SystemExit(f"dkp {stage} failed in {cwd} (rc {proc.returncode}); see {log}")

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", text).group(1).strip()

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    secs = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    mb = 1024 * 1024
    return {
        "stage": stage,
        "max_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024, 1),
        "wall_s": round(secs, 1),
        "cpu_s": round(
            float(field("User time (seconds)")) + float(field("System time (seconds)")), 1
        ),
        "sampled_anon_mb_max": round(peak.get("anon_max", 0) / mb, 1),
        "sampled_file_mb_max": round(peak.get("file_max", 0) / mb, 1),
        "sampled_tree_mb_max": round(peak.get("tree_max", 0) / mb, 1),
    }


def data_size(cwd: Path) -> dict:
    """Validation videos and frames of a project (through dkp.framestore), and the frames' bytes."""
    code = (
        "import json, yaml; from dkp import framestore; p = yaml.safe_load(open('params.yaml')); "
        "v = framestore.available(p, p['data']['val_subset']); "
        "t = framestore.available(p, p['data']['train_subset']); "
        "print(json.dumps({'val_videos': len(v), 'val_frames': int(v.n_frames.sum()), "
        "'train_videos': len(t), 'train_frames': int(t.n_frames.sum())}))"
    )
    r = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True
        ).stdout
    )
    frames = sum(
        f.stat().st_size
        for f in (cwd / "data" / "frames").rglob("*.npy")
        if not f.name.endswith(".t.npy")
    )
    r["frames_mb"] = round(frames / 2**20, 1)
    feats = cwd / "data" / "features" / f"seed-{first_seed(cwd)}"
    if feats.exists():
        r["features_mb"] = round(sum(f.stat().st_size for f in feats.rglob("*.npy")) / 2**20, 1)
    return r


def table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def cmd_stages(args) -> dict:
    root = Path(args.root).resolve()
    log = root / "memory_bench.log"
    rows = []
    for stage in args.stages.split(","):
        rows.append(measure(stage, root, log))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    res = {"root": str(root), "data": data_size(root), "stages": rows}
    print(table(rows, list(rows[0])))
    return res


def cmd_scale(args) -> dict:
    root, work = Path(args.root).resolve(), Path(args.work).resolve()
    base = yaml.safe_load((root / "params.yaml").read_text())
    per_class = base["data"]["synthetic"]["val_per_class"]
    out = []
    for f in map(int, args.factors.split(",")):
        d = work / f"x{f}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        p = yaml.safe_load((root / "params.yaml").read_text())
        p["data"]["synthetic"]["val_per_class"] = per_class * f
        (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        shutil.copytree(root / "models", d / "models")
        log = d / "memory_bench.log"
        rows = []
        if f == 1:
            shutil.copytree(root / "data", d / "data", ignore=shutil.ignore_patterns("features"))
        else:
            for stage in ("synthesize", "data", "frames"):
                rows.append(measure(stage, d, log))
        for stage in args.stages.split(","):
            rows.append(measure(stage, d, log))
            print(json.dumps({"factor": f, **rows[-1]}), file=sys.stderr, flush=True)
        out.append({"factor": f, "val_per_class": per_class * f, **data_size(d), "stages": rows})
    flat = [
        {
            "factor": o["factor"],
            "val_videos": o["val_videos"],
            "val_frames": o["val_frames"],
            "frames_on_disk_mb": o["frames_mb"],
            "features_on_disk_mb": o.get("features_mb", ""),
            **{f"rss_{r['stage']}_mb": r["max_rss_mb"] for r in o["stages"]},
            **{f"anon_{r['stage']}_mb": r["sampled_anon_mb_max"] for r in o["stages"]},
        }
        for o in out
    ]
    cols = list(dict.fromkeys(k for row in flat for k in row))
    print(table(flat, cols))
    return {"root": str(root), "factors": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("stages")
    a.add_argument("--root", required=True)
    a.add_argument("--stages", default=",".join(STAGES))
    a.add_argument("--json", default=None)
    b = sub.add_parser("scale")
    b.add_argument("--root", required=True)
    b.add_argument("--work", required=True)
    b.add_argument("--factors", default="1,2,4")
    b.add_argument("--stages", default="features,sweep")
    b.add_argument("--json", default=None)
    args = ap.parse_args()
    res = cmd_stages(args) if args.cmd == "stages" else cmd_scale(args)
    res["load_avg"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
