"""Video specifications: the cheap, pure part of the dataset (ids, subsets, labels, lengths, segments).

Everything here is a function of `data.synthetic` alone and costs milliseconds,
so tests can check the length and coverage distribution of the default dataset
without rendering a frame. Times live on the frame grid of the generated video
(frame k is shown at k / fps), which keeps annotations and frames consistent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import classes

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ID_LEN = 11
TWO_SEGMENT_PROB = 0.5  # share of videos whose activity is split in two segments


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
    """n distinct youtube-like ids; the first character is alphanumeric (no '-' leading a file name)."""
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


def stratified_log_uniform(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """n values log-uniform on [lo, hi], one per equal-probability stratum, in random order.

    Stratifying guarantees the full spread even for a dozen videos; log-uniform
    puts the median at sqrt(lo * hi), far nearer lo than hi: a long tail of long
    videos, which adaptive sampling under-samples.
    """
    u = (rng.permutation(n) + rng.random(n)) / n
    return lo * (hi / lo) ** u


def _split(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    """A random composition of total into `parts` non-negative integers."""
    cuts = np.sort(rng.integers(0, total + 1, size=parts - 1))
    return [int(x) for x in np.diff(np.concatenate([[0], cuts, [total]]))]


def make_segments(rng: np.random.Generator, n_frames: int, lo: float, hi: float) -> tuple[tuple[int, int], ...]:
    """One or two activity segments covering between lo and hi of the frames, rest background."""
    n_min, n_max = math.ceil(lo * n_frames), math.floor(hi * n_frames)
    if n_min > n_max:  # lo == hi and no integer fits: nearest feasible count
        n_min = n_max = max(1, round(lo * n_frames))
    n_act = int(np.clip(round(rng.uniform(lo, hi) * n_frames), max(n_min, 1), max(n_max, 1)))
    n_bg = n_frames - n_act
    if n_act >= 4 and n_bg >= 1 and rng.random() < TWO_SEGMENT_PROB:
        a = int(rng.integers(math.ceil(0.25 * n_act), math.floor(0.75 * n_act) + 1))
        g0, g1, g2 = _split(rng, n_bg - 1, 3)
        s1 = g0
        s2 = s1 + a + g1 + 1  # at least one background frame between the two
        return ((s1, s1 + a), (s2, s2 + n_act - a))
    g0, _ = _split(rng, n_bg, 2)
    return ((g0, g0 + n_act),)


def make_shots(rng: np.random.Generator, n_frames: int, fps: float, lo: float, hi: float) -> tuple[int, ...]:
    """Shot start frames: shot lengths uniform in [lo, hi] seconds (at least one frame)."""
    starts, k = [0], 0
    while True:
        k += max(1, round(rng.uniform(lo, hi) * fps))
        if k >= n_frames:
            return tuple(starts)
        starts.append(k)


def make_specs(syn: dict, train_subset: str = "training", val_subset: str = "validation") -> list[VideoSpec]:
    """All video specs for `data.synthetic` parameters, sorted by id. Pure and deterministic."""
    rng = np.random.default_rng([syn["seed"], 0x5EC])
    n_classes, fps = syn["num_classes"], float(syn["fps"])
    subsets = [train_subset] * syn["train_per_class"] + [val_subset] * syn["val_per_class"]
    rows = [(c, s) for c in range(n_classes) for s in subsets]
    n = len(rows)
    ids = make_ids(rng, n)
    seconds = stratified_log_uniform(rng, n, syn["min_duration"], syn["max_duration"])
    lo_frames = max(2, math.ceil(syn["min_duration"] * fps))
    hi_frames = max(lo_frames, math.floor(syn["max_duration"] * fps))
    specs = []
    for (c, subset), vid, sec in zip(rows, ids, seconds):
        n_frames = int(np.clip(round(sec * fps), lo_frames, hi_frames))
        segments = make_segments(rng, n_frames, syn["min_coverage"], syn["max_coverage"])
        occluder, render_seed = bool(rng.random() < syn["occluder_prob"]), int(rng.integers(2**62))
        shots = make_shots(np.random.default_rng([render_seed, 0x5407]), n_frames, fps, *syn["shot_seconds"])
        specs.append(VideoSpec(
            vid=vid, subset=subset, class_index=c, fps=fps, size=syn["size"], n_frames=n_frames,
            segments=segments, occluder=occluder, noise=float(syn["noise"]),
            render_seed=render_seed, shot_starts=shots))
    return sorted(specs, key=lambda s: s.vid)
