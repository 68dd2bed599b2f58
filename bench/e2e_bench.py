"""Benchmark 4: the whole pipeline end to end, `dvc repro` and `snakemake --cores N`, stage by stage.

Each runner gets its own fresh clone of the committed project (HEAD), with params.yaml
replaced by --params when given, and nothing generated: every stage runs. Per-stage wall
times come from the runners' own output, stamped as it streams:
- dvc: from one "Running stage 'X'" line to the next (stages run one after another);
- snakemake: from a job's "rule X:" block to its "Finished jobid: N" line, summed over
  the jobs of a rule (frames and sweep fan out, so a rule's sum can exceed its span).
Afterwards it checks the two runs agree byte for byte on results/metrics.json and
results/curves.csv (the determinism contract) and prints a markdown table.

    .venv/bin/python bench/e2e_bench.py --params tests/params-tiny.yaml --cores 2 [--json out.json]
    .venv/bin/python bench/e2e_bench.py --cores 2          # the default parameters

Goal (issue 7): default <= 15 min, tiny <= 90 s on 2 cores, for each runner.
"""  # noqa: E501 (first line is the argparse description)

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

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("results/metrics.json", "results/curves.csv")
DVC_STAGE = re.compile(r"Running stage '([^']+)'")
SMK_RULE = re.compile(r"^\s*(?:local)?rule (\w+):")
SMK_JOBID = re.compile(r"^\s*jobid: (\d+)")
SMK_DONE = re.compile(r"Finished jobid: (\d+)")


def clone(dest: Path, params: Path | None) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    if params is not None:
        shutil.copy(params, dest / "params.yaml")
    return dest


def env(repo: Path) -> dict:
    out = dict(
        os.environ,
        DVC_NO_ANALYTICS="1",
        DKP_NO_PROGRESS="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(repo / "src"),
    )
    out["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{out['PATH']}"
    return out


def stream(cmd: list[str], repo: Path, log: Path) -> tuple[float, list[tuple[float, str]]]:
    """Run cmd in repo; (wall seconds, [(seconds since start, line)]); fail with the log's tail."""
    start = time.monotonic()
    lines = []
    with (
        open(log, "w") as fh,
        subprocess.Popen(
            cmd,
            cwd=repo,
            env=env(repo),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
            fh.write(line)
    wall = time.monotonic() - start
    if proc.returncode:
        tail = "".join(line + "\n" for _, line in lines[-30:])
        sys.exit(f"e2e_bench: {' '.join(cmd)} exited {proc.returncode} in {repo}\n{tail}")
    return wall, lines


def dvc_stages(lines, wall: float) -> dict[str, float]:
    marks = [(t, m.group(1)) for t, line in lines if (m := DVC_STAGE.search(line))]
    ends = [t for t, _ in marks[1:]] + [wall]
    return {name: end - t for (t, name), end in zip(marks, ends)}


def snakemake_jobs(lines) -> dict[str, float]:
    started, rule_of, total = {}, {}, {}
    rule, rule_t = None, 0.0
    for t, line in lines:
        if m := SMK_RULE.match(line):
            rule, rule_t = m.group(1), t
        elif (m := SMK_JOBID.match(line)) and rule is not None:
            started[m.group(1)], rule_of[m.group(1)] = rule_t, rule
            rule = None
        elif (m := SMK_DONE.search(line)) and m.group(1) in started:
            r = rule_of[m.group(1)]
            total[r] = total.get(r, 0.0) + t - started[m.group(1)]
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--params", type=Path, default=None, help="params file to run (default: the repo's)"
    )
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the scratch clones")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    params = args.params.resolve() if args.params else None
    root = Path(tempfile.mkdtemp(prefix="dkp-e2e-"))
    try:
        d, s = clone(root / "dvc", params), clone(root / "snakemake", params)
        dvc_wall, dvc_lines = stream(["dvc", "repro"], d, root / "dvc.log")
        smk_wall, smk_lines = stream(
            ["snakemake", "--profile", "workflow/profiles/default", "--cores", str(args.cores)],
            s,
            root / "snakemake.log",
        )
        same = {f: (d / f).read_bytes() == (s / f).read_bytes() for f in COMPARED}
        stages, jobs = dvc_stages(dvc_lines, dvc_wall), snakemake_jobs(smk_lines)
        label = args.params.name if args.params else "params.yaml"
        print(
            f"\n{label}, --cores {args.cores}: dvc repro {dvc_wall:.1f} s, "
            f"snakemake {smk_wall:.1f} s; byte-identical: "
            + ", ".join(f"{f} {'yes' if ok else 'NO'}" for f, ok in same.items())
        )
        print(
            "\n| stage | dvc repro s (sum over seeds) | snakemake job s (sum over jobs) "
            "|\n|---|---|---|"
        )
        per_stage: dict[str, float] = {}
        for name, secs in stages.items():  # foreach stages: train-teacher@0, @1, ... summed
            base = name.split("@")[0]
            per_stage[base] = per_stage.get(base, 0.0) + secs
        for name, secs in per_stage.items():
            rule = name.replace("-", "_")
            print(f"| {name} | {secs:.1f} | {jobs.get(rule, float('nan')):.1f} |")
        print(f"| **total (wall)** | **{dvc_wall:.1f}** | **{smk_wall:.1f}** |")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "params": label,
                        "cores": args.cores,
                        "dvc_wall": dvc_wall,
                        "snakemake_wall": smk_wall,
                        "dvc_stages": stages,
                        "snakemake_jobs": jobs,
                        "identical": same,
                    },
                    indent=1,
                )
            )
        return 0 if all(same.values()) else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")


if __name__ == "__main__":
    raise SystemExit(main())
