"""Training throughput on a machine's cores: one stage with all threads, or one-thread stages
side by side (what `make repro` runs: Snakemake, `run.threads` per job).

For the default teacher and Student networks (params.yaml: arch, width, input size, optimiser,
batch), fixed random channels-last batches, `--steps` training steps per process, after
`--warmup` untimed ones. Each round runs, one after the other:
- one process with `--threads` threads;
- `--threads` processes with one thread each, started together.
Prints frames a second for each, and the ratio (side by side over alone) per network.

    python bench/threads_bench.py [--params params.yaml] [--threads 2] [--steps 100] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETS = ("teacher", "student")  # params groups


def worker(params: str, net: str, threads: int, steps: int, warmup: int) -> None:
    """One training process: prints its frames a second over the timed steps."""
    import torch
    import yaml
    from optimizer_bench import setup_training  # the stages' network, optimiser and batches

    torch.set_num_threads(threads)
    p = yaml.safe_load(Path(params).read_text())
    model, opt, data = setup_training(p, net, "loop")
    n = len(data[0][1])
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        x, y = data[i % len(data)]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    print(n * steps / (time.perf_counter() - start))


def _run(args, net: str, threads: int, copies: int) -> float:
    """Frames a second of `copies` processes of `threads` threads started together, summed."""
    cmd = [sys.executable, __file__, "--worker", net, "--params", args.params]
    cmd += ["--threads", str(threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"threads_bench: a worker exited {proc.returncode}")
        rates.append(float(out))
    return sum(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--threads", type=int, default=2, help="the machine's cores to fill")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", choices=NETS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.params, args.worker, args.threads, args.steps, args.warmup)
        return
    print(
        f"| network | {args.threads} threads, alone (frames/s) | {args.threads} x 1 thread "
        "side by side (frames/s, summed) | ratio |"
    )
    print("|---|---:|---:|---:|")
    for net in NETS:
        alone, side = [], []
        for _ in range(args.rounds):
            alone.append(_run(args, net, args.threads, 1))
            side.append(_run(args, net, 1, args.threads))
        a, s = statistics.median(alone), statistics.median(side)
        spread = f"{min(alone):.0f}-{max(alone):.0f}", f"{min(side):.0f}-{max(side):.0f}"
        print(f"| {net} | {a:.0f} ({spread[0]}) | {s:.0f} ({spread[1]}) | {s / a:.2f} |")


if __name__ == "__main__":
    main()
