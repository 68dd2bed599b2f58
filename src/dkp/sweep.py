"""`dkp sweep [--group G]`: every sampling configuration, scored from the feature cache.

Work is batched across configurations: for each batch of `sweep.batch_videos`
videos (grouped by duration, so fixed-interval batches need little padding) the
cached feature rows of those videos are read once and moved to the device once;
the per-frame terms of every cached row of the block (Predictor.terms: the query,
key and value projections, the f-halves of the heads, classifier probabilities)
are computed once, on first use; every configuration then samples its frames
from that block (per-video sample indices are memoised by frame count, since
both strategies reduce to "n segment centres"), gathers their rows of the terms
and runs only what couples the frames (Predictor.predict_terms: attention and
the z-halves of the heads). Configurations that feed one method the same frames
are computed once. Memory holds one block and its terms at a time, so it stays
flat as videos grow.

Each configuration is fed its distinct frames only (dkp.sampling.config_indices: segment
centres that land on the same extracted frame feed it once), and each video's cost in
GFLOPs is measured on the distinct counts (Predictor.cost), so no configuration is charged
for a frame it did not get; the predictions also keep the nominal counts.

For `--seed N`, from seed N's feature cache and checkpoints, writes
results/predictions/seed-N/<group>/<config>.npz (dkp.predictions, dkp.layout) per group,
each group's folder atomically, and for `sweep.s3_config`
<config>.frames.json: a list, one object per video (sorted by id), of
{id, label, label_index, duration, segments, times, student, dste}: the
student frames' timestamps (s) and the ground-truth class probability of each
student frame from method "student" and from "dste" on the same frames.
"""

from __future__ import annotations

import json

import numpy as np
from tqdm import tqdm

from . import configs as configs_mod
from . import framestore, layout, runtime, sampling
from .atomic import atomic_dir, clean_stale_temps
from .errors import DkpError
from .predictions import Predictions
from .predictions import write as write_predictions


def select(p: dict, group: str | None) -> list:
    """Configurations of one group (or all); unknown group -> one line listing the valid ones."""
    configs = configs_mod.build(p)
    if group is None:
        return configs
    chosen = [c for c in configs if c.group == group]
    if not chosen:
        raise DkpError(f"unknown group {group!r}; valid groups: {', '.join(configs_mod.groups(p))}")
    return chosen


def _signature(c, roles: dict) -> tuple:
    """Configurations with equal signatures feed the same method the same frames: same scores
    (e.g. dste_adaptive-4_nt5, dste_nt5_ns20 and dste_ns20_nt5), so they are computed once."""
    s, t = "s" in roles, "t" in roles
    if c.strategy == "fixed":
        return (c.method, c.strategy, (c.ratio, c.rs) if s else None, c.rt if t else None)
    return (c.method, c.strategy, c.ns if s else None, c.nt if t else None)


def _batches(durations: np.ndarray, batch_videos: int) -> list[np.ndarray]:
    """Video batches by duration (stable), so fixed-interval counts, hence padding, vary little
    inside a batch."""
    order = np.argsort(durations, kind="stable")
    return [order[i : i + batch_videos] for i in range(0, len(order), batch_videos)]


def _gather_index(local_off, idx_lists, device):
    """(rows (B, n) into the block, mask (B, n) bool, True = valid) for one role of one
    configuration; padded slots point at the block's first row, the mask keeps them out."""
    import torch

    counts = np.fromiter(map(len, idx_lists), dtype=np.int64, count=len(idx_lists))
    mask = np.arange(int(counts.max()))[None, :] < counts[:, None]
    gather = np.zeros(mask.shape, dtype=np.int64)
    # row-major: video by video
    gather[mask] = np.concatenate(idx_lists) + np.repeat(local_off, counts)
    return torch.from_numpy(gather).to(device), torch.from_numpy(mask).to(device)


def _load_block(cache, names, vids, offsets, nframes, durations, device):
    """The cached rows of some videos, read once for every configuration: per-backbone
    tensors, timestamps, positions (timestamp / duration, fixed per row) and each video's
    first row in them."""
    import torch

    spans = [slice(int(offsets[v]), int(offsets[v] + nframes[v])) for v in vids]
    blocks = {name: torch.from_numpy(cache.rows(name, spans)).to(device) for name in names}
    times = np.concatenate([cache.times[sp] for sp in spans])
    pos = torch.from_numpy(sampling.positions(times, np.repeat(durations[vids], nframes[vids]))).to(
        device
    )
    local_off = np.concatenate([[0], np.cumsum(nframes[vids])[:-1]]).astype(np.int64)
    return blocks, times, pos, local_off


class _BlockTerms:
    """Per-frame terms of one block, computed on first use and shared by every method that
    reads the same ones (Predictor.terms_key)."""

    def __init__(self, predictor, blocks, pos):
        self.predictor, self.blocks, self.pos, self.memo = predictor, blocks, pos, {}

    def take(self, method: str, role: str, rows) -> dict:
        """The terms of the rows (B, n) of the block: each (B, n, ...)."""
        key = self.predictor.terms_key(method, role)
        if key not in self.memo:
            self.memo[key] = self.predictor.terms(method, role, self.blocks[key[1]], self.pos)
        return {k: v[rows] for k, v in self.memo[key].items()}


class _BlockIndices:
    """The distinct frames `count` segment centres land on, per video of a block, memoised (every
    configuration of a block asks the same few counts)."""

    def __init__(self, times, local_off, nframes: np.ndarray, durations: np.ndarray):
        self.times, self.local_off, self.nframes, self.durations = (
            times,
            local_off,
            nframes,
            durations,
        )
        self.memo: list[dict[int, np.ndarray]] = [{} for _ in durations]

    def __call__(self, b: int, count: int) -> np.ndarray:
        if count not in self.memo[b]:
            t = self.times[self.local_off[b] : self.local_off[b] + self.nframes[b]]
            self.memo[b][count] = sampling.distinct_indices(t, self.durations[b], count)
        return self.memo[b][count]


def _score_block(predictor, c, roles: dict, terms, indices: _BlockIndices, local_off, device):
    """One configuration on a block of videos: (predict_terms' result, per role the distinct
    frames fed (idx) and their gather index (where), nominal counts (B, 2))."""
    counts = np.array(
        [sampling.role_counts(c, d) for d in indices.durations], dtype=np.int64
    ).reshape(-1, 2)
    inputs, idx, where = {}, {}, {}
    for role in roles:
        k = 0 if role == "s" else 1
        if counts[:, k].min() < 1:
            raise DkpError(
                f"configuration {c.name}: method {c.method} uses role {role!r} "
                f"but the configuration gives it no frames"
            )
        idx[role] = [indices(b, int(n)) for b, n in enumerate(counts[:, k])]
        where[role] = _gather_index(local_off, idx[role], device)
        inputs[role] = (terms.take(c.method, role, where[role][0]), where[role][1])
    result = predictor.predict_terms(c.method, **inputs)
    if not np.isfinite(result["video"].float().cpu().numpy()).all():
        raise DkpError(
            f"configuration {c.name}: method {c.method} gives non-finite scores "
            f"(NaN/inf in the cached features or the checkpoints)"
        )
    return result, idx, where, counts


def _s3_block(predictor, result, terms, idx, where, times, local_off, labels) -> list:
    """Figure S-3's rows of a block: the S-3 configuration's per-frame probabilities beside the
    plain Student's on the same frames (_s3_frames)."""
    if "s" not in idx:
        raise DkpError(
            "sweep.s3_config must name a configuration whose method gives "
            "per-frame probabilities on student frames (dste or dkp)"
        )
    rows_s, mask_s = where["s"]
    student_in = (terms.take("student", "s", rows_s), mask_s)  # the plain student's terms
    return _s3_frames(predictor, result, student_in, idx, times, local_off, labels)


def _predictions(cost, index, labels, unique: dict, out: dict) -> dict[str, Predictions]:
    """Every configuration's Predictions, each video charged the GFLOPs of the frames it was fed
    (cost: a dkp.flops.CostModel; one evaluation per method and pair of counts)."""
    ids = index["id"].astype(str).to_numpy()
    charged, preds = {}, {}
    for sig, o in out.items():
        method = unique[sig][0].method
        pairs = list(zip(o["ns"].tolist(), o["nt"].tolist()))
        for pair in pairs:
            if (method, *pair) not in charged:
                charged[(method, *pair)] = cost.gflops(method, *pair)
        gflops = np.array([charged[(method, a, b)] for a, b in pairs], dtype=np.float64)
        for c in unique[sig]:
            preds[c.name] = Predictions(
                ids, labels, o["scores"], o["ns"], o["nt"], o["ns_nominal"], o["nt_nominal"], gflops
            )
    return preds


def _fill(o: dict, vids, result, idx: dict, counts: np.ndarray) -> None:
    """A block's scores, and per role the frames fed and asked for."""
    o["scores"][vids] = result["video"].float().cpu().numpy()
    for role, k in (("s", 0), ("t", 1)):
        if role in idx:
            o["n" + role][vids] = [len(i) for i in idx[role]]
            o[f"n{role}_nominal"][vids] = counts[:, k]


def _empty_outputs(n_videos: int, n_classes: int) -> dict:
    """One configuration's scores and frame counts, filled block by block."""
    counts = {k: np.zeros(n_videos, np.int64) for k in ("ns", "nt", "ns_nominal", "nt_nominal")}
    return {"scores": np.zeros((n_videos, n_classes), np.float32), **counts}


def sweep(
    predictor,
    cache,
    configs,
    batch_videos: int,
    device,
    s3_config: str | None = None,
    progress: bool = True,
) -> tuple[dict[str, Predictions], list]:
    """Run configurations over all cached videos, each on its distinct frames.

    Returns (name -> Predictions, s3 rows): the rows, one per video in cache order, are
    (student frame times, ground-truth probability per frame from "student", from
    s3_config's method); empty unless s3_config is among the configurations."""
    import torch

    from .flops import CostModel
    from .inference import ROLES

    roles = {c.name: predictor.roles(c.method) for c in configs}
    # the Student baseline's backbone, for the S-3 comparison
    plain = predictor.roles("student")["s"]
    needed = sorted(
        {name for r in roles.values() for name in r.values()}
        | ({plain} if any(c.name == s3_config for c in configs) else set())
    )
    cache.require(needed)
    unique: dict[tuple, list] = {}
    for c in configs:
        unique.setdefault(_signature(c, roles[c.name]), []).append(c)
    index = cache.index
    offsets = index["offset"].to_numpy(np.int64)
    nframes = index["n_frames"].to_numpy(np.int64)
    durations = index["duration"].to_numpy(np.float64)
    labels = index["label_index"].to_numpy(np.int64)
    n_videos = len(index)
    out = {sig: _empty_outputs(n_videos, predictor.num_classes) for sig in unique}
    s3_rows: list = [None] * n_videos
    bar = tqdm(
        total=n_videos * len(unique), unit="video-config", desc="sweep", disable=not progress
    )
    with torch.inference_mode():
        for vids in _batches(durations, batch_videos):
            blocks, times, pos, local_off = _load_block(
                cache, needed, vids, offsets, nframes, durations, device
            )
            terms = _BlockTerms(predictor, blocks, pos)
            indices = _BlockIndices(times, local_off, nframes[vids], durations[vids])
            for sig, group in unique.items():
                c = group[0]
                result, idx, where, counts = _score_block(
                    predictor, c, roles[c.name], terms, indices, local_off, device
                )
                _fill(out[sig], vids, result, idx, counts)
                if any(g.name == s3_config for g in group):
                    rows = _s3_block(
                        predictor, result, terms, idx, where, times, local_off, labels[vids]
                    )
                    for b, row in zip(vids, rows):
                        s3_rows[b] = row
                bar.update(len(vids))
    bar.close()
    # the modules' MACs as `dkp features` counted them on these checkpoints
    cost = CostModel.from_counts(cache.costs, ROLES)
    preds = _predictions(cost, index, labels, unique, out)
    return {c.name: preds[c.name] for c in configs}, (s3_rows if s3_config in preds else [])


def _s3_frames(predictor, out, student_in, idx, times, local_off, labels) -> list:
    """Per video: student frame times and the ground-truth probability per student frame
    from "student" (the terms of its own backbone's features, `student_in`) and from the
    configuration's own method, both on the same frames."""
    if out.get("frames") is None:
        raise DkpError(
            "sweep.s3_config must name a configuration whose method gives per-frame "
            "probabilities on student frames (dste or dkp)"
        )
    student = predictor.predict_terms("student", s=student_in)["frames"].float().cpu().numpy()
    own = out["frames"].float().cpu().numpy()
    rows = []
    for b, i in enumerate(idx["s"]):
        n, y = len(i), int(labels[b])
        rows.append((times[local_off[b] + i], student[b, :n, y], own[b, :n, y]))
    return rows


def _frames_json(rows: list, cache_index, manifest, class_names: list[str]) -> list[dict]:
    segments = dict(zip(manifest["id"].astype(str), manifest["segments"]))
    out = []
    for (t, stu, dste), (_, v) in zip(rows, cache_index.iterrows()):
        seg = segments.get(str(v["id"]), "[]")
        out.append(
            {
                "id": str(v["id"]),
                "label": class_names[int(v["label_index"])],
                "label_index": int(v["label_index"]),
                "duration": round(float(v["duration"]), 6),
                "segments": json.loads(seg) if isinstance(seg, str) else seg,
                "times": [round(float(x), 6) for x in t],
                "student": [round(float(x), 6) for x in stu],
                "dste": [round(float(x), 6) for x in dste],
            }
        )
    return out


def run(p: dict, args) -> None:
    chosen = select(p, getattr(args, "group", None))  # before any heavy import: a typo fails fast
    from .feature_cache import FeatureCache
    from .inference import Predictor

    seed = args.seed
    device = runtime.setup(p, seed)
    cache = FeatureCache(layout.features_dir(seed), p["frames"]["shards"])
    predictor = Predictor.load(p, device, seed)
    s3 = p["sweep"]["s3_config"]
    preds, s3_rows = sweep(
        predictor,
        cache,
        chosen,
        p["sweep"]["batch_videos"],
        device,
        s3_config=s3,
        progress=not runtime.progress_disabled(),
    )
    for group in dict.fromkeys(c.group for c in chosen):
        target = layout.predictions_dir(seed) / group
        clean_stale_temps(target.parent, owner=target.name)
        with atomic_dir(target) as tmp:
            for c in (c for c in chosen if c.group == group):
                write_predictions(
                    tmp / layout.predictions_file(seed, group, c.name).name, preds[c.name]
                )
                if c.name == s3:
                    rows = _frames_json(
                        s3_rows,
                        cache.index,
                        framestore.load_manifest(p),
                        list(framestore.load_classes(p)),
                    )
                    text = json.dumps(rows, indent=1, sort_keys=True) + "\n"
                    (tmp / layout.s3_frames_file(seed, group, c.name).name).write_text(text)
    print(
        f"sweep: {len(chosen)} configurations x {len(cache)} videos -> "
        f"{layout.predictions_dir(seed)}/"
    )
