"""Benchmark the cached sweep: all configurations vs one, and vs the naive path.

    .venv/bin/python bench/sweep_bench.py [--params params.yaml] [--repeat 3] [--videos N]

Run from the project root after `dkp features` (and the training stages). Three
timed paths, each from a loaded Predictor and open feature cache to scores and
metrics of its configurations (loading both is timed once and added to each):
- one:   `dkp sweep`'s code on one configuration (--one, default sweep.s3_config);
- all:   the same code on every configuration of dkp.configs;
- naive: every configuration, rerunning the backbones on the sampled frames read
         from data/frames (batched like the sweep: the reference the cache replaces).
Prints the times and the ratios all/one (goal <= 1.3) and naive/all (goal >= 10),
medians over --repeat runs in one process, so the ratios share the machine's state.
--rss V1,V2,... measures the sweep's peak resident memory on the first V videos,
each in a fresh process (flat = the cache is read block by block).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from dkp import configs as configs_mod
from dkp import framestore, metrics, params, runtime, sampling
from dkp.features import FeatureCache
from dkp.inference import Predictor
from dkp.sweep import _role_batch, sweep


def score_all(preds: dict, names) -> None:
    for n in names:
        metrics.mean_ap(preds[n].scores, preds[n].labels)
        metrics.mean_ap_official(preds[n].scores, preds[n].labels)


def naive_sweep(p, predictor, index, configs, batch_videos, device) -> dict:
    """Per configuration: load each video's frames, sample, run the backbones, predict."""
    out = {}
    chunk = p["features"]["batch_frames"]
    with torch.inference_mode():
        for c in configs:
            roles = predictor.roles(c.method)
            scores = []
            for b0 in range(0, len(index), batch_videos):
                rows = index.iloc[b0:b0 + batch_videos]
                loaded = [framestore.load(p, vid) for vid in rows["id"]]
                inputs = {}
                for role, name in roles.items():
                    k = 0 if role == "s" else 1
                    picked, times, local, idx = [], [], [], []
                    start = 0
                    for (frames, t), dur in zip(loaded, rows["duration"]):
                        n = sampling.role_counts(c, float(dur))[k]
                        i = sampling.nearest_indices(t, sampling.segment_centres(float(dur), n))
                        picked.append(np.asarray(frames[i]))
                        times.append(t[i])
                        local.append(start)
                        idx.append(np.arange(n))
                        start += n
                    frames = np.concatenate(picked)
                    feats = torch.cat([predictor.embed(name, frames[j:j + chunk]) for j in range(0, len(frames), chunk)])
                    inputs[role] = _role_batch(feats.to(device), np.concatenate(times), rows["duration"].to_numpy(),
                                               np.array(local), idx, device)
                scores.append(predictor.predict(c.method, **inputs)["video"].float().cpu().numpy())
            out[c.name] = np.concatenate(scores)
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--videos", type=int, default=None, help="use only the first N evaluated videos")
    ap.add_argument("--one", default=None, help="configuration of the 'one' path (default sweep.s3_config)")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--rss", default=None, help="comma-separated video counts: peak memory of the sweep per count")
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    p = params.load(args.params)
    os.environ.setdefault("DKP_NO_PROGRESS", "1")

    if args.rss:
        rows = []
        for v in (int(x) for x in args.rss.split(",")):
            res = subprocess.run([sys.executable, __file__, "--params", args.params, "--rss-child", str(v)],
                                 check=True, capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows))
        return 0

    device = runtime.setup(p)
    t_setup, (predictor, cache) = timed(lambda: (Predictor.load(p, device), FeatureCache()))
    n = args.rss_child or args.videos
    if n:
        cache.index = cache.index.iloc[:n].reset_index(drop=True)
    configs = configs_mod.build(p)
    one = configs_mod.by_name(p)[args.one or p["sweep"]["s3_config"]]
    bv = p["sweep"]["batch_videos"]

    if args.rss_child:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sweep(predictor, cache, configs, bv, device, progress=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"videos": len(cache.index), "frames": int(cache.index["n_frames"].sum()),
                          "peak_rss_mb": round(peak / 1024, 1), "rss_before_sweep_mb": round(before / 1024, 1)}))
        return 0

    sweep(predictor, cache, [one], bv, device, progress=False)  # warm-up: page cache, kernels, lazy inits
    times = {"one": [], "all": [], "naive": []}
    for _ in range(args.repeat):
        times["one"].append(timed(lambda: score_all(sweep(predictor, cache, [one], bv, device, progress=False)[0],
                                                    [one.name]))[0])
        times["all"].append(timed(lambda: score_all(sweep(predictor, cache, configs, bv, device, progress=False)[0],
                                                    [c.name for c in configs]))[0])
        if not args.skip_naive:
            times["naive"].append(timed(lambda: naive_sweep(p, predictor, cache.index, configs, bv, device))[0])
    med = {k: statistics.median(v) + t_setup for k, v in times.items() if v}
    report = {"device": str(device), "threads": p["run"]["threads"], "videos": len(cache.index),
              "frames": int(cache.index["n_frames"].sum()), "configurations": len(configs), "one": one.name,
              "setup_s": round(t_setup, 3), **{f"{k}_s": round(v, 3) for k, v in med.items()},
              "ratio_all_over_one": round(med["all"] / med["one"], 3)}
    if "naive" in med:
        report["ratio_naive_over_all"] = round(med["naive"] / med["all"], 2)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
