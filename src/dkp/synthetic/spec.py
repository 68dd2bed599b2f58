"""Video specifications: the cheap, pure part of the dataset (ids, subsets, labels, lengths,
segments).

Everything here is a function of `data.synthetic` alone and costs milliseconds,
so tests can check the length and coverage distribution of the default dataset
without rendering a frame. Times live on the frame grid of the generated video
(frame k is shown at k / fps), which keeps annotations and frames consistent.

Durations, segment counts and labelled coverage follow the statistics of the real
ActivityNet v1.3 training+validation annotations (activitynet_v13_stats.json, its
`source` says where they come from): duration from the reference quantile function,
segment count and coverage from the reference for the video's duration bin. Every
length in seconds (durations, hence segments, and shot lengths) is multiplied by
`time_scale`; fractions and counts are unchanged by it.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import classes

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ID_LEN = 11
STATS_PATH = Path(__file__).with_name("activitynet_v13_stats.json")
QUANTILE_KEYS = ("min", "p01", "p05", "p10", "p25", "median", "p75", "p90", "p95", "p99", "max")
QUANTILE_PROBS = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1.0)
MIN_FRAMES = 2  # shortest generated video (frames)
REAL_FPS = 30  # the frame rate of the real video the generated lengths stand for


@dataclass(frozen=True)
class VideoSpec:
    """One synthetic video. Segments are [start, end) frame-index ranges holding the object."""

    vid: str
    subset: str
    class_index: int
    fps: float
    size: int
    n_frames: int
    segments: tuple[tuple[int, int], ...]
    occluder: bool
    noise: float
    render_seed: int
    shot_starts: tuple[int, ...] = (0,)  # first frame of each camera shot

    def shot_of(self, frames) -> np.ndarray:
        """Camera shot number of each frame index."""
        return np.searchsorted(np.asarray(self.shot_starts), np.asarray(frames), side="right") - 1

    @property
    def label(self) -> str:
        return classes.class_name(self.class_index)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def coverage(self) -> float:
        return sum(e - s for s, e in self.segments) / self.n_frames

    def segments_seconds(self) -> list[list[float]]:
        return [[s / self.fps, e / self.fps] for s, e in self.segments]

    def active(self, frames) -> np.ndarray:
        """Boolean per frame index: is the labelled object in that frame?"""
        frames = np.asarray(frames)
        out = np.zeros(frames.shape, dtype=bool)
        for s, e in self.segments:
            out |= (frames >= s) & (frames < e)
        return out


def make_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct youtube-like ids; the first character is alphanumeric (no '-' leading a file
    name)."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        first = _ID_CHARS[int(rng.integers(62))]
        rest = "".join(_ID_CHARS[i] for i in rng.integers(64, size=_ID_LEN - 1))
        vid = first + rest
        if vid not in seen:
            seen.add(vid)
            ids.append(vid)
    return ids


def stratified_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """n probabilities, one in each of n equal strata of [0, 1), in random order.

    Stratifying makes even a dozen videos span the whole distribution and keeps the
    quantiles of a few hundred within about 1/n of the reference.
    """
    return (rng.permutation(n) + rng.random(n)) / n


def quantile_function(u, probs, values) -> np.ndarray:
    """The piecewise-linear inverse CDF through (probs[i], values[i]), evaluated at u."""
    return np.interp(np.asarray(u, dtype=float), probs, values)


def _split(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    """A random composition of total into `parts` non-negative integers."""
    cuts = np.sort(rng.integers(0, total + 1, size=parts - 1))
    return [int(x) for x in np.diff(np.concatenate([[0], cuts, [total]]))]


def make_segments(
    rng: np.random.Generator, n_frames: int, coverage: float, n_segments: int
) -> tuple[tuple[int, int], ...]:
    """`n_segments` activity segments holding round(coverage * n_frames) frames, rest background.

    Each segment has at least one frame and consecutive segments at least one background
    frame between them; when the video is too short for that, the count or the coverage
    gives way (count first: a 3-frame video holds at most 2 segments). Segment lengths and
    the background before, between and after them are random compositions, so the first
    start and the gap after the last segment spread from zero to all the background.
    """
    k = max(1, min(int(n_segments), (n_frames + 1) // 2))
    n_act = int(np.clip(round(coverage * n_frames), k, n_frames - (k - 1)))
    n_bg = n_frames - n_act
    lengths = [1 + x for x in _split(rng, n_act - k, k)]
    gaps = _split(rng, n_bg - (k - 1), k + 1)
    segments, t = [], gaps[0]
    for i, length in enumerate(lengths):
        segments.append((t, t + length))
        t += length + (1 + gaps[i + 1] if i < k - 1 else 0)
    return tuple(segments)


@functools.lru_cache(maxsize=1)
def reference() -> dict:
    """The ActivityNet v1.3 train+val statistics the generator follows."""
    with open(STATS_PATH) as fh:
        return json.load(fh)


def duration_bins(ref: dict) -> list[tuple[str, float, float]]:
    """(name, low, high) seconds of the reference's duration bins ("0-30s", ..., ">=180s"), in
    order."""
    bins = []
    for name in ref["by_duration_bin"]:
        if name.startswith(">="):
            lo, hi = float(name[2:].rstrip("s")), math.inf
        else:
            lo, hi = (float(x) for x in name.rstrip("s").split("-"))
        bins.append((name, lo, hi))
    return sorted(bins, key=lambda b: b[1])


def bin_index(ref: dict, seconds) -> np.ndarray:
    """Index into duration_bins(ref) of each duration (reference seconds)."""
    lows = [lo for _, lo, _ in duration_bins(ref)]
    return np.searchsorted(lows, np.asarray(seconds, dtype=float), side="right") - 1


def duration_quantiles(ref: dict) -> tuple[tuple[float, ...], list[float]]:
    """(probabilities, seconds) of the reference duration quantile function."""
    q = ref["duration_s_trainval"]
    return QUANTILE_PROBS, [q[k] for k in QUANTILE_KEYS]


def coverage_quantiles(ref: dict, bin_name: str) -> tuple[tuple[float, ...], list[float]]:
    """(probabilities, coverage) for one duration bin: the bin's p10..p90, the overall tails."""
    overall, core = (
        ref["coverage_fraction_union"],
        ref["by_duration_bin"][bin_name]["coverage_fraction"],
    )
    values = [
        overall[k] if k in ("min", "p01", "p05", "p95", "p99", "max") else core[k]
        for k in QUANTILE_KEYS
    ]
    # a bin's p90 may exceed the overall p95
    return QUANTILE_PROBS, list(np.maximum.accumulate(values))


def segment_count_probs(ref: dict, bin_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts, probabilities) of the number of segments in a video of one duration bin.

    The reference gives the overall histogram and each bin's mean count. Keeping the
    overall shape of counts >= 2 and choosing the share of one-segment videos so the
    bin's mean comes out reproduces both (the shares weighted by bin sizes give back
    the overall 75.5 %).
    """
    hist = {int(k): v for k, v in ref["segments_per_video_histogram"].items()}
    counts = np.array(sorted(hist))
    freq = np.array([hist[k] for k in counts], dtype=float)
    multi = counts >= 2
    multi_shape = freq * multi / freq[multi].sum()
    mean_multi = float((counts * multi_shape).sum())
    mean = ref["by_duration_bin"][bin_name]["segments_per_video_mean"]
    p1 = float(np.clip((mean_multi - mean) / (mean_multi - 1), 0.0, 1.0))
    return counts, np.where(counts == 1, p1, (1 - p1) * multi_shape)


# frame rates a short video may be raised to: divisors of 1000, so every frame time is a whole
# number of milliseconds, as the annotation file writes times
RAISED_FPS = tuple(d for d in range(1, 1001) if 1000 % d == 0)


def native_fps(seconds: float, fps: float, min_frames: int, time_scale: float) -> float:
    """A video's frame rate: `fps`, raised for a short video to the smallest of RAISED_FPS that
    gives it `min_frames` frames, but never above what real video of REAL_FPS has in real time
    (REAL_FPS / time_scale): a generated short video then has the frames its real counterpart
    would."""
    if seconds <= 0 or fps * seconds >= min_frames:
        return fps
    cap = REAL_FPS / time_scale
    allowed = [float(r) for r in RAISED_FPS if fps < r <= cap]
    if not allowed:
        return fps
    return next((r for r in allowed if r * seconds >= min_frames), allowed[-1])


def make_shots(
    rng: np.random.Generator, n_frames: int, fps: float, lo: float, hi: float
) -> tuple[int, ...]:
    """Shot start frames: shot lengths uniform in [lo, hi] seconds (at least one frame)."""
    starts, k = [0], 0
    while True:
        k += max(1, round(rng.uniform(lo, hi) * fps))
        if k >= n_frames:
            return tuple(starts)
        starts.append(k)


def _temporal_layout(ref: dict, rng: np.random.Generator, n: int):
    """(reference-length seconds, segment counts, labelled coverages) of n videos: durations
    stratified over the whole set, segment counts and coverages over each duration bin's videos,
    so the set's quantiles sit close to the reference's."""
    ref_seconds = quantile_function(stratified_uniform(rng, n), *duration_quantiles(ref))
    bins = bin_index(ref, ref_seconds)
    n_segments, coverage = np.ones(n, dtype=int), np.zeros(n)
    for b, (name, _, _) in enumerate(duration_bins(ref)):
        members = np.flatnonzero(bins == b)
        counts, probs = segment_count_probs(ref, name)
        cdf = np.cumsum(probs) / probs.sum()
        u = stratified_uniform(rng, members.size)
        n_segments[members] = counts[
            np.minimum(np.searchsorted(cdf, u, side="right"), counts.size - 1)
        ]
        coverage[members] = quantile_function(
            stratified_uniform(rng, members.size), *coverage_quantiles(ref, name)
        )
    return ref_seconds, n_segments, coverage


def make_specs(
    syn: dict,
    train_subset: str = "training",
    val_subset: str = "validation",
    tune_subset: str | None = None,
) -> list[VideoSpec]:
    """All video specs for `data.synthetic` parameters, sorted by id. Pure and deterministic.

    tune_subset: the labelled split for choosing hyperparameters (tune_per_class videos a
    class), or None for none. The temporal layout: _temporal_layout.
    """
    ref = reference()
    rng = np.random.default_rng([syn["seed"], 0x5EC])
    n_classes, fps, scale = syn["num_classes"], float(syn["fps"]), float(syn["time_scale"])
    subsets = [train_subset] * syn["train_per_class"] + [val_subset] * syn["val_per_class"]
    if tune_subset:
        subsets += [tune_subset] * syn["tune_per_class"]
    rows = [(c, s) for c in range(n_classes) for s in subsets]
    ids = make_ids(rng, len(rows))
    ref_seconds, n_segments, coverage = _temporal_layout(ref, rng, len(rows))
    shot_lo, shot_hi = (x * scale for x in syn["shot_seconds"])
    specs = []
    for i, ((c, subset), vid) in enumerate(zip(rows, ids)):
        video_fps = native_fps(ref_seconds[i] * scale, fps, syn["min_frames"], scale)
        n_frames = max(MIN_FRAMES, round(ref_seconds[i] * scale * video_fps))
        segments = make_segments(rng, n_frames, coverage[i], n_segments[i])
        occluder, render_seed = bool(rng.random() < syn["occluder_prob"]), int(rng.integers(2**62))
        shots = make_shots(
            np.random.default_rng([render_seed, 0x5407]), n_frames, video_fps, shot_lo, shot_hi
        )
        specs.append(
            VideoSpec(
                vid=vid,
                subset=subset,
                class_index=c,
                fps=video_fps,
                size=syn["size"],
                n_frames=n_frames,
                segments=segments,
                occluder=occluder,
                noise=float(syn["noise"]),
                render_seed=render_seed,
                shot_starts=shots,
            )
        )
    return sorted(specs, key=lambda s: s.vid)
