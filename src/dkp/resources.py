"""What a run needs of its machines, from the parameters and the data: the frame store's size on
disk, and the memory each torch job asks its scheduler for (the Snakefile's `mem_mb`).

Pure functions of params.yaml, the videos' durations (data/manifest.csv) and the ranks a job runs;
the constants below are measurements (bench/README.md, "Memory per stage" and "Frame store"), on
the 2-core AMD EPYC VM unless said otherwise. `dkp.resources.rule_mem_mb` is what the rules call.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import configs as configs_mod
from . import sampling

MB = 2**20
# JPEG bytes per pixel of a 224-px frame at each quality (Pillow, 4:2:0, optimised Huffman tables),
# over 120 windows of three natural photographs (bench/README.md, "Frame store"); in between,
# linear in the quality. Real video frames, softer than photographs, come out smaller.
JPEG_BYTES_224 = {75: 9_200, 85: 12_300, 90: 15_300, 95: 21_700}
JPEG_BYTES_PER_PIXEL = {q: b / 224**2 for q, b in JPEG_BYTES_224.items()}
# Training activations a frame, MB, of each backbone at 224 px and width 1 (fp32 on the CPU,
# forward and backward, measured as the peak's growth from 2 to 6 frames a step); they scale with
# the pixels and about with the width.
TRAIN_ACT_MB_224 = {"resnet18": 32, "resnet34": 44, "resnet50": 129, "mobilenet_v2": 102}
# without gradients only a few layers' outputs are alive at once
INFER_SHARE = 0.1
PARAMS_M = {"resnet18": 11.7, "resnet34": 21.8, "resnet50": 25.6, "mobilenet_v2": 3.5}
FEATURE_DIM = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "mobilenet_v2": 1280}
# a process with python, numpy, torch and dkp imported and a network built (measured 316-401 MB)
TORCH_MB = 450
# host memory of a process that has initialised CUDA (driver, cuBLAS, cuDNN): an assumption until
# bench/gpu_check.sh prints a measured one (its `host peak` lines)
CUDA_MB = 3000
# a loader worker: a forked copy of its stage, which touches little of it
WORKER_MB = 150
# per video held: its manifest row, its entry in the training set, its file name
VIDEO_KB = 4
SAFETY = 1.25  # on top of the sum: allocator slack, the sampling of the measurements


# ---- the frame store on disk ------------------------------------------------------------------


def frames_per_video(p: dict, durations) -> np.ndarray:
    """The frames `dkp frames` keeps of videos of these lengths (dkp.frames.frame_count with the
    sweep's demand): enough for every configuration to be fed the distinct frames it names. The
    stage keeps every k-th decoded frame, so it may keep a few more than this count."""
    from .frames import extraction_demand, frame_count

    demand, fps = extraction_demand(p), p["frames"]["fps"]
    return np.array(
        [frame_count(float(d), fps, demand) for d in np.atleast_1d(durations)], dtype=np.int64
    )


def frame_side(p: dict) -> int:
    return p["frames"]["crop"] or p["frames"]["size"]


def frame_bytes(p: dict) -> float:
    """Bytes a stored frame takes: raw (npy), or JPEG at frames.jpeg_quality (JPEG_BYTES_PER_PIXEL,
    interpolated; a frame without a crop is taken as square at frames.size)."""
    pixels = frame_side(p) ** 2
    if p["frames"]["format"] == "npy":
        return 3.0 * pixels
    q = sorted(JPEG_BYTES_PER_PIXEL)
    per_pixel = float(
        np.interp(p["frames"]["jpeg_quality"], q, [JPEG_BYTES_PER_PIXEL[k] for k in q])
    )
    if p["frames"]["jpeg_quality"] > q[-1]:  # towards lossless: no better bound than raw
        per_pixel = 3.0
    return per_pixel * pixels


def store_size(p: dict, durations) -> dict:
    """The frame store of videos of these durations (seconds): frames, bytes a frame, GB."""
    n = int(frames_per_video(p, durations).sum())
    size = n * frame_bytes(p)
    return {"videos": len(durations), "frames": n, "frame_bytes": frame_bytes(p), "GB": size / 1e9}


def reference_durations(source: str) -> np.ndarray:
    """Video lengths of a real data set, from the reference statistics shipped with dkp: ActivityNet
    v1.3 training + validation (14,377 videos, their duration quantile function evaluated at evenly
    spread points) or Mini-Kinetics-200 (85,000 clips of 10 s)."""
    if source == "kinetics":
        return np.full(85_000, 10.0)
    from .synthetic.spec import STATS_PATH, duration_quantiles, quantile_function

    ref = json.loads(Path(STATS_PATH).read_text())
    n = int(ref["trainval_videos"])
    return quantile_function((np.arange(n) + 0.5) / n, *duration_quantiles(ref))


# ---- memory of the torch jobs -----------------------------------------------------------------


def _act_mb(net: dict, training: bool) -> float:
    """MB a frame of activations of a backbone params group at its input size."""
    per = TRAIN_ACT_MB_224[net["arch"]] * (net["input_size"] / 224) ** 2 * float(net["width"])
    return per if training else per * INFER_SHARE


def _model_mb(net: dict, training: bool) -> float:
    """Weights (and for training their gradients, momentum and a spare copy), MB."""
    params = PARAMS_M[net["arch"]] * 1e6 * float(net["width"]) ** 2
    return params * 4 * (4 if training else 1) / MB


def _frame_mb(p: dict) -> float:
    """A decoded frame in memory (uint8), MB."""
    return 3 * frame_side(p) ** 2 / MB


def _ring_mb(p: dict, frames_per_step: int) -> float:
    """The loader's ring (dkp.train.loader): workers x prefetch + 2 slots of a step's frames; with
    no worker, the step read in the training process."""
    lcfg = p["train"]["loader"]
    slots = lcfg["workers"] * lcfg["prefetch"] + 2 if lcfg["workers"] else 1
    return slots * frames_per_step * _frame_mb(p) + lcfg["workers"] * WORKER_MB


def _input_mb(net: dict, frames: int) -> float:
    """The float copies of a step's frames at the network's input (unit, augment, prepare)."""
    return 3 * frames * 3 * net["input_size"] ** 2 * 4 / MB


def dkp_step_frames(p: dict, longest: float, ranks: int = 1) -> int:
    """A bound on one rank's frames in a DKP-phase step: its share of max_frames_per_step, or one
    video's n_s + n_t where that alone is more (the largest nominal counts of the longest video;
    the phase shares a step by videos)."""
    one_video = max(
        sum(sampling.role_counts(c, longest))
        for c in configs_mod.build(p)
        if c.method in ("dkp", "dste")
    )
    return max(-(-p["train"]["student"]["max_frames_per_step"] // ranks), one_video)


def train_mem_mb(p: dict, stage: str, counts: dict, ranks: int = 1, cuda: bool = False) -> int:
    """The memory (MB) one node of a training job asks for: train_mem_total with the margin."""
    return _rounded(train_mem_total(p, stage, counts, ranks, cuda))


def train_mem_total(p: dict, stage: str, counts: dict, ranks: int = 1, cuda: bool = False) -> float:
    """The memory (MB) one node of a training job holds at most, by the model: `ranks` processes
    on the node (one per GPU, or the CPU ranks), rank 0 of them scoring the monitor frames.

    counts: "train" / "monitor" videos, "frames" (extracted frames of both), "longest" (seconds).
    cuda: activations live on the GPUs, each rank holds a CUDA context on the host instead."""
    base = TORCH_MB + (CUDA_MB if cuda else 0)
    held = (counts["train"] + counts["monitor"]) * VIDEO_KB / 1024 + counts["frames"] * 8 / MB
    tcfg = p["train"]
    phases = []  # (network, a rank's frames a step, whether a frozen teacher runs too)
    cfg = tcfg["teacher" if stage == "train-teacher" else "plain_student"]
    step = min(cfg["batch_videos"], max(1, counts["train"])) * cfg["segments"]
    if stage == "train-teacher":
        phases.append((p["teacher"], -(-step // ranks), False))
    else:
        phases.append((p["student"], -(-step // ranks), False))
        phases.append((p["student"], dkp_step_frames(p, counts["longest"], ranks), True))
    per_rank = 0.0
    for net, share, frozen in phases:
        # a ring per frame list: the DKP phase reads student and teacher frames, each up to a step
        need = _model_mb(net, True) + _input_mb(net, share) + _ring_mb(p, share * (1 + frozen))
        if frozen:
            need += _model_mb(p["teacher"], False)
            if not cuda:
                need += share * _act_mb(p["teacher"], False)
        if not cuda:
            need += share * _act_mb(net, True)
        per_rank = max(per_rank, need)
    # rank 0 streams the monitor frames through the network(s) and keeps their features
    monitor = counts["monitor"] * tcfg["val_frames_per_video"]
    nets = [p["teacher"]] if stage == "train-teacher" else [p["student"], p["teacher"]]
    val = sum(monitor * FEATURE_DIM[n["arch"]] * 4 * 3 / MB for n in nets)
    val += 256 * (_frame_mb(p) + (0 if cuda else _act_mb(nets[0], False)))
    return ranks * (base + held + per_rank) + val


def features_mem_mb(p: dict, counts: dict, cuda: bool = False) -> int:
    """A `dkp features` job (one frame shard): both networks, one batch of frames at a time."""
    b = p["features"]["batch_frames"]
    total = TORCH_MB + (CUDA_MB if cuda else 0) + counts["frames"] * 8 / MB
    for net in (p["teacher"], p["student"]):
        total += _model_mb(net, False) + _input_mb(net, b) / 3
        if not cuda:
            total += b * _act_mb(net, False)
    total += b * _frame_mb(p) * 2
    return _rounded(total)


def sweep_mem_mb(p: dict, counts: dict) -> int:
    """A `dkp sweep` job: measured 280-392 MB (anonymous) at 240-960 videos, + 0.16 MB a video."""
    return _rounded(TORCH_MB + 0.16 * counts["monitor"] + counts["frames"] * 8 / MB)


def _rounded(mb: float) -> int:
    return int(math.ceil(mb * SAFETY / 100.0) * 100)


def manifest_counts(p: dict, manifest) -> dict:
    """What the memory functions need from data/manifest.csv (a DataFrame of its ok rows)."""
    ok = manifest[manifest["status"] == "ok"]
    train = ok[ok["subset"] == p["data"]["train_subset"]]
    monitor_name = p["data"]["tune_subset"] or p["data"]["val_subset"]
    monitor = ok[ok["subset"] == monitor_name]
    val = ok[ok["subset"] == p["data"]["val_subset"]]
    used = ok[ok["subset"].isin({p["data"]["train_subset"], monitor_name, p["data"]["val_subset"]})]
    durations = used["duration"].to_numpy(float)
    return {
        "train": len(train),
        "monitor": len(monitor),
        "val": len(val),
        "frames": int(frames_per_video(p, durations).sum()) if len(durations) else 0,
        "longest": float(durations.max()) if len(durations) else 0.0,
    }


def rule_mem_mb(p: dict, stage: str, manifest_path, ranks: int = 1, cuda: bool = False) -> int:
    """mem_mb of a torch rule (train-teacher, train-student, features, sweep) from data/manifest.csv
    (FileNotFoundError until `dkp data` wrote it: Snakemake then evaluates it when the job runs)."""
    import pandas as pd

    manifest = pd.read_csv(
        manifest_path,
        usecols=["subset", "duration", "status"],
        dtype={"subset": str, "status": str},
    )
    counts = manifest_counts(p, manifest)
    if stage in ("train-teacher", "train-student"):
        return train_mem_mb(p, stage, counts, ranks, cuda)
    if stage == "features":
        shard = dict(counts, frames=-(-counts["frames"] // p["frames"]["shards"]))
        return features_mem_mb(p, shard, cuda)
    if stage == "sweep":
        return sweep_mem_mb(p, dict(counts, monitor=counts["val"]))
    raise ValueError(f"no memory model for stage {stage!r}")
