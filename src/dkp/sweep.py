"""`dkp sweep [--group G]`: every sampling configuration, scored from the feature cache.

Work is batched across configurations: for each batch of `sweep.batch_videos`
videos the cached feature rows of those videos (contiguous in the cache) are
read once and moved to the device once; every configuration then samples its
frames from that block (per-video sample indices are memoised by frame count,
since both strategies reduce to "n segment centres") and runs only the DKP
heads. Memory holds one block at a time, so it stays flat as videos grow.

Writes results/predictions/<group>/<config>.npz (dkp.predictions) per group,
each group's folder atomically, and for `sweep.s3_config`
<config>.frames.json: a list, one object per video (sorted by id), of
{id, label, label_index, duration, segments, times, student, dste}: the
student frames' timestamps (s) and the ground-truth class probability of each
student frame from method "student" and from "dste" on the same frames.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import configs as configs_mod
from . import sampling
from .atomic import atomic_dir
from .errors import DkpError
from .predictions import Predictions, write as write_predictions

PRED_ROOT = Path("results/predictions")
ROLE_FIELD = {"s": "ns", "t": "nt"}


def select(p: dict, group: str | None) -> list:
    """Configurations of one group (or all); unknown group -> one line listing the valid ones."""
    configs = configs_mod.build(p)
    if group is None:
        return configs
    chosen = [c for c in configs if c.group == group]
    if not chosen:
        raise DkpError(f"unknown group {group!r}; valid groups: {', '.join(configs_mod.groups(p))}")
    return chosen


@dataclass
class _Acc:
    scores: list = field(default_factory=list)
    ns: list = field(default_factory=list)
    nt: list = field(default_factory=list)
    frames: list = field(default_factory=list)  # s3 only: per video (times, student, dste)


def _role_batch(block, times, durations, local_off, idx_lists, device):
    """Padded (feats (B, n, D), pos (B, n), mask (B, n)) for one role of one configuration."""
    import torch

    counts = np.array([len(i) for i in idx_lists])
    n = int(counts.max())
    gather = np.zeros((len(idx_lists), n), dtype=np.int64)
    mask = np.zeros((len(idx_lists), n), dtype=bool)
    pos = np.zeros((len(idx_lists), n), dtype=np.float32)
    for b, idx in enumerate(idx_lists):
        rows = local_off[b] + idx
        gather[b, :len(idx)] = rows
        mask[b, :len(idx)] = True
        pos[b, :len(idx)] = sampling.positions(times[rows], durations[b])
    g = torch.from_numpy(gather).to(device)
    m = torch.from_numpy(mask).to(device)
    feats = block[g] * m.unsqueeze(-1).to(block.dtype)  # padded slots zeroed; the mask hides them anyway
    return feats, torch.from_numpy(pos).to(device), m


def sweep(predictor, cache, configs, batch_videos: int, device, s3_config: str | None = None,
          progress: bool = True) -> tuple[dict[str, Predictions], list]:
    """Run configurations over all cached videos.

    Returns (name -> Predictions, s3 rows): the rows, one per video, are (student frame
    times, ground-truth probability per frame from "student", from s3_config's method);
    empty unless s3_config is among the configurations."""
    import torch
    from tqdm import tqdm

    roles = {c.name: predictor.roles(c.method) for c in configs}
    needed = sorted({name for r in roles.values() for name in r.values()})
    cache.require(needed)
    index = cache.index
    offsets = index["offset"].to_numpy(np.int64)
    nframes = index["n_frames"].to_numpy(np.int64)
    durations = index["duration"].to_numpy(np.float64)
    labels = index["label_index"].to_numpy(np.int64)
    acc = {c.name: _Acc() for c in configs}
    n_videos = len(index)
    bar = tqdm(total=n_videos * len(configs), unit="video-config", desc="sweep", disable=not progress)
    with torch.inference_mode():
        for b0 in range(0, n_videos, batch_videos):
            b1 = min(b0 + batch_videos, n_videos)
            r0, r1 = int(offsets[b0]), int(offsets[b1 - 1] + nframes[b1 - 1])
            blocks = {name: torch.from_numpy(np.array(cache.arrays[name][r0:r1])).to(device)
                      for name in needed}
            times = np.asarray(cache.times[r0:r1], dtype=np.float64)
            local_off = offsets[b0:b1] - r0
            dur = durations[b0:b1]
            memo: list[dict[int, np.ndarray]] = [{} for _ in range(b1 - b0)]

            def indices(v: int, count: int) -> np.ndarray:
                if count not in memo[v]:
                    t = times[local_off[v]:local_off[v] + nframes[b0 + v]]
                    memo[v][count] = sampling.nearest_indices(t, sampling.segment_centres(dur[v], count))
                return memo[v][count]

            for c in configs:
                counts = [sampling.role_counts(c, d) for d in dur]
                inputs = {}
                for role, name in roles[c.name].items():
                    k = 0 if role == "s" else 1
                    if any(cnt[k] < 1 for cnt in counts):
                        raise DkpError(f"configuration {c.name}: method {c.method} uses role {role!r} "
                                       f"but the configuration gives it no frames")
                    idx = [indices(v, cnt[k]) for v, cnt in enumerate(counts)]
                    inputs[role] = (idx, _role_batch(blocks[name], times, dur, local_off, idx, device))
                out = predictor.predict(c.method, **{r: x[1] for r, x in inputs.items()})
                a = acc[c.name]
                a.scores.append(out["video"].float().cpu().numpy())
                a.ns.append([len(i) for i in inputs["s"][0]] if "s" in inputs else [0] * (b1 - b0))
                a.nt.append([len(i) for i in inputs["t"][0]] if "t" in inputs else [0] * (b1 - b0))
                if c.name == s3_config:
                    a.frames += _s3_frames(predictor, out, inputs, times, local_off, labels[b0:b1])
                bar.update(b1 - b0)
    bar.close()
    ids = index["id"].astype(str).to_numpy()
    preds = {c.name: Predictions(ids, labels, np.concatenate(acc[c.name].scores).astype(np.float32),
                                 np.concatenate(acc[c.name].ns).astype(np.int64),
                                 np.concatenate(acc[c.name].nt).astype(np.int64)) for c in configs}
    return preds, (acc[s3_config].frames if s3_config in acc else [])


def _s3_frames(predictor, out, inputs, times, local_off, labels) -> list:
    """Per video: student frame times and the ground-truth probability per student frame
    from "student" and from the configuration's own method on the same frames."""
    if "s" not in inputs or out.get("frames") is None:
        raise DkpError("sweep.s3_config must name a configuration whose method gives per-frame "
                       "probabilities on student frames (dste or dkp)")
    idx, s = inputs["s"]
    student = predictor.predict("student", s=s)["frames"].float().cpu().numpy()
    own = out["frames"].float().cpu().numpy()
    rows = []
    for b, i in enumerate(idx):
        n, y = len(i), int(labels[b])
        rows.append((times[local_off[b] + i], student[b, :n, y], own[b, :n, y]))
    return rows


def _frames_json(rows: list, cache_index, manifest, class_names: list[str]) -> list[dict]:
    segments = dict(zip(manifest["id"].astype(str), manifest["segments"]))
    out = []
    for (t, stu, dste), (_, v) in zip(rows, cache_index.iterrows()):
        seg = segments.get(str(v["id"]), "[]")
        out.append({
            "id": str(v["id"]),
            "label": class_names[int(v["label_index"])],
            "label_index": int(v["label_index"]),
            "duration": round(float(v["duration"]), 6),
            "segments": json.loads(seg) if isinstance(seg, str) else seg,
            "times": [round(float(x), 6) for x in t],
            "student": [round(float(x), 6) for x in stu],
            "dste": [round(float(x), 6) for x in dste],
        })
    return out


def run(p: dict, args) -> None:
    chosen = select(p, getattr(args, "group", None))  # before any heavy import: a typo fails fast
    from . import framestore, runtime
    from .features import FeatureCache, remove_stale_temps
    from .inference import Predictor

    device = runtime.setup(p)
    cache = FeatureCache()
    predictor = Predictor.load(p, device)
    s3 = p["sweep"]["s3_config"]
    preds, s3_rows = sweep(predictor, cache, chosen, p["sweep"]["batch_videos"], device, s3_config=s3,
                           progress=not runtime.progress_disabled())
    for group in dict.fromkeys(c.group for c in chosen):
        remove_stale_temps(PRED_ROOT / group)
        with atomic_dir(PRED_ROOT / group) as tmp:
            for c in (c for c in chosen if c.group == group):
                write_predictions(tmp / f"{c.name}.npz", preds[c.name])
                if c.name == s3:
                    rows = _frames_json(s3_rows, cache.index, framestore.load_manifest(p),
                                        list(framestore.load_classes(p)))
                    (tmp / f"{c.name}.frames.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    print(f"sweep: {len(chosen)} configurations x {len(cache)} videos -> {PRED_ROOT}/")
