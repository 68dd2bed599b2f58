"""Benchmark the cached sweep: all configurations vs one, and vs the naive path.

    .venv/bin/python bench/sweep_bench.py [--params params.yaml] [--repeat 3] [--videos N]
                                          [--threads T] [--skip-naive] [--rss 30,60,120]

Run from the project root after `dkp features --seed N` (and the training stages); --seed
picks the seed (default: the first of run.seeds). Paths:
- one:   the sweep's code on one configuration (--one, default sweep.s3_config);
- all:   the same code on every configuration of dkp.configs;
- naive: every configuration, rerunning the backbones on the sampled frames read
         from data/frames (batched like the sweep): the reference the cache replaces.
Each is timed two ways: in one process (Predictor and cache loaded once, not
counted), and as a fresh process that imports, loads, sweeps and writes its .npz
files (what `dkp sweep` costs; not for naive, which takes minutes). one and all
alternate --repeat times so they share the machine's load; reported: the fastest
wall time and the median CPU time (user + system, this process or the children),
which a busy shared machine disturbs far less. Ratios all/one (goal <= 1.3) and
naive/all (goal >= 10) come from the same run. --rss V1,V2,... gives the sweep's peak resident
memory on the first V videos, each in a fresh process (flat = the cache is read block by block).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_sweep(p, predictor, index, configs, batch_videos, device) -> dict:
    """Per configuration: load each video's frames, sample, run the backbones, predict."""
    import torch

    from dkp import framestore, sampling

    out = {}
    chunk = p["features"]["batch_frames"]
    with torch.inference_mode():
        for c in configs:
            roles = predictor.roles(c.method)
            scores = []
            for b0 in range(0, len(index), batch_videos):
                rows = index.iloc[b0 : b0 + batch_videos]
                loaded = [framestore.load(p, vid) for vid in rows["id"]]
                inputs = {}
                for role, name in roles.items():
                    k = 0 if role == "s" else 1
                    picked, pos = [], []
                    for (frames, t), dur in zip(loaded, rows["duration"]):
                        n = sampling.role_counts(c, float(dur))[k]
                        i = sampling.nearest_indices(t, sampling.segment_centres(float(dur), n))
                        picked.append(np.asarray(frames[i]))
                        pos.append(sampling.positions(t[i], float(dur)))
                    frames = np.concatenate(picked)
                    feats = torch.cat(
                        [
                            predictor.embed(name, frames[j : j + chunk])
                            for j in range(0, len(frames), chunk)
                        ]
                    )
                    inputs[role] = _padded(feats, pos, device)
                scores.append(predictor.predict(c.method, **inputs)["video"].float().cpu().numpy())
            out[c.name] = np.concatenate(scores)
    return out


def _padded(feats, pos: list[np.ndarray], device):
    """(feats (B, n, D), pos (B, n), mask (B, n)) from the videos' rows in order."""
    import torch

    counts = [len(x) for x in pos]
    mask = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]
    padded = feats.new_zeros(*mask.shape, feats.shape[1])
    padded[mask] = feats
    pos_t = torch.zeros(mask.shape)
    pos_t[mask] = torch.from_numpy(np.concatenate(pos))
    return padded.to(device), pos_t.to(device), mask.to(device)


def _clock(fn, children: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call; CPU of this process, or of the children it waits
    for."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    r0, t0 = resource.getrusage(who), time.perf_counter()
    fn()
    r1, t1 = resource.getrusage(who), time.perf_counter()
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _interleaved(fns: dict, repeat: int, children: bool = False) -> dict:
    """Run the paths in turn `repeat` times (so each sees the same machine load); per path
    the fastest wall time (least disturbed run) and the median CPU time."""
    runs = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            runs[k].append(_clock(fn, children))
    return {k: (min(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}


def _setup(args):
    import torch

    from dkp import configs as configs_mod
    from dkp import layout, params, runtime
    from dkp.feature_cache import FeatureCache
    from dkp.inference import Predictor

    p = params.load(args.params)
    if args.threads:
        p["run"]["threads"] = args.threads
    if args.batch_videos:
        p["sweep"]["batch_videos"] = args.batch_videos
    seed = p["run"]["seeds"][0] if args.seed is None else args.seed
    device = runtime.setup(p, seed)
    predictor = Predictor.load(p, device, seed)
    cache = FeatureCache(layout.features_dir(seed), p["frames"]["shards"])
    n = args.videos or args.rss_child
    if n:
        cache.index = cache.index.iloc[:n].reset_index(drop=True)
    configs = configs_mod.build(p)
    one = configs_mod.by_name(p)[args.one or p["sweep"]["s3_config"]]
    torch.set_num_threads(p["run"]["threads"])
    return p, device, predictor, cache, configs, one


def child(args) -> None:
    """A fresh process: import, load, sweep one or all configurations, write the .npz files."""
    from dkp.predictions import write
    from dkp.sweep import sweep

    p, device, predictor, cache, configs, one = _setup(args)
    chosen = configs if args.child == "all" else [one]
    preds, _ = sweep(predictor, cache, chosen, p["sweep"]["batch_videos"], device, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        for name, pred in preds.items():
            write(Path(tmp) / f"{name}.npz", pred)
    if args.rss_child:
        print(
            json.dumps(
                {
                    "videos": len(cache.index),
                    "frames": int(cache.index["n_frames"].sum()),
                    "peak_rss_mb": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                    ),
                }
            )
        )


def _spawn(args, mode: str, extra: list[str] = ()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, __file__, "--params", args.params, "--child", mode, *extra]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.videos:
        cmd += ["--videos", str(args.videos)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.batch_videos:
        cmd += ["--batch-videos", str(args.batch_videos)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed whose checkpoints and features to use (default: the first of run.seeds)",
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--videos", type=int, default=None, help="use only the first N evaluated videos"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default run.threads)")
    ap.add_argument(
        "--batch-videos",
        type=int,
        default=None,
        help="videos per batch (default sweep.batch_videos)",
    )
    ap.add_argument(
        "--one", default=None, help="configuration of the 'one' path (default sweep.s3_config)"
    )
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument(
        "--rss",
        default=None,
        help="comma-separated video counts: peak memory of the sweep per count",
    )
    ap.add_argument("--child", choices=["one", "all"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("DKP_NO_PROGRESS", "1")

    if args.child:
        child(args)
        return 0
    if args.rss:
        rows = [
            json.loads(_spawn(args, "all", ["--rss-child", v]).stdout.strip().splitlines()[-1])
            for v in args.rss.split(",")
        ]
        print(json.dumps(rows, indent=1))
        return 0

    from dkp import metrics
    from dkp.sweep import sweep

    t0 = time.perf_counter()
    p, device, predictor, cache, configs, one = _setup(args)
    setup_s = time.perf_counter() - t0
    bv = p["sweep"]["batch_videos"]

    def run(chosen):
        preds, _ = sweep(predictor, cache, chosen, bv, device, progress=False)
        for pred in preds.values():
            metrics.mean_ap(pred.scores, pred.labels)
            metrics.mean_ap_official(pred.scores, pred.labels)

    run([one])  # warm-up: page cache, allocator, kernels
    r = {
        "device": str(device),
        "threads": p["run"]["threads"],
        "videos": len(cache.index),
        "frames": int(cache.index["n_frames"].sum()),
        "configurations": len(configs),
        "one": one.name,
        "repeat": args.repeat,
        "setup_s": round(setup_s, 3),
    }
    inproc = _interleaved({"one": lambda: run([one]), "all": lambda: run(configs)}, args.repeat)
    proc = _interleaved(
        {"one": lambda: _spawn(args, "one"), "all": lambda: _spawn(args, "all")},
        args.repeat,
        children=True,
    )
    for kind, res in (("inproc", inproc), ("process", proc)):
        for path, (wall, cpu) in res.items():
            r[f"{kind}_{path}_wall_s"], r[f"{kind}_{path}_cpu_s"] = wall, cpu
        r[f"ratio_all_over_one_{kind}_wall"] = res["all"][0] / res["one"][0]
        r[f"ratio_all_over_one_{kind}_cpu"] = res["all"][1] / res["one"][1]
    if not args.skip_naive:
        wall, cpu = _clock(lambda: naive_sweep(p, predictor, cache.index, configs, bv, device))
        r["inproc_naive_wall_s"], r["inproc_naive_cpu_s"] = wall, cpu
        r["ratio_naive_over_all_wall"] = wall / inproc["all"][0]
        r["ratio_naive_over_all_cpu"] = cpu / inproc["all"][1]
    print(
        json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
