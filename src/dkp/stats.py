"""Paired bootstrap over videos: resample weights, weighted mAP, percentile intervals. Pure numpy.

One draw of video resample weights (B resamples x V videos, each weight the number of
times the video is drawn) is shared by every configuration and every seed, so a
difference between two configurations is computed inside each resample (paired) and its
interval is read off the same draws.

The weighted AP of a class equals `metrics.average_precision` on the resample with each
video repeated `weight` times (repeats tie, and a tie group is admitted whole). With
integer weights: precision at a positive video i = (weighted positives scoring >= s_i) /
(weighted videos scoring >= s_i), and the AP is the weight-averaged precision over the
positives. The two sums are one matrix product per configuration (videos x videos
comparison matrix), so B = 2000 resamples cost milliseconds per configuration.
"""

from __future__ import annotations

import math

import numpy as np


def resample_weights(n_videos: int, resamples: int, seed: int, stream: int = 0) -> np.ndarray:
    """(B, V) int32 counts: row b = how often each video is drawn in resample b (rows sum to V).

    stream: an independent draw from the same seed (stream 1 resamples the seeds, see seed_mean)."""
    rng = np.random.default_rng(seed if stream == 0 else [seed, stream])
    idx = rng.integers(0, n_videos, size=(resamples, n_videos))
    flat = idx + (np.arange(resamples) * n_videos)[:, None]
    return (
        np.bincount(flat.ravel(), minlength=resamples * n_videos)
        .reshape(resamples, n_videos)
        .astype(np.int32)
    )


class Resamples:
    """One draw of video weights (B, V) for videos with fixed labels; scores any configuration on
    it.

    The per-class weighted positive counts depend only on the weights and labels, so they are
    computed once here and shared by every configuration and seed.
    """

    def __init__(self, labels: np.ndarray, weights: np.ndarray, n_classes: int):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.weights = np.atleast_2d(np.asarray(weights)).astype(np.float32)
        n_videos = self.labels.size
        if self.weights.shape[1] != n_videos:
            raise ValueError(f"weights cover {self.weights.shape[1]} videos, labels {n_videos}")
        self.n_classes = n_classes
        # videos grouped by class: per-class sums are reduceat over contiguous runs
        self.order = np.argsort(self.labels, kind="stable")
        sorted_labels = self.labels[self.order]
        self.classes, self.starts = np.unique(sorted_labels, return_index=True)
        self.same = self.labels[:, None] == self.labels[None, :]
        w = self.weights.astype(np.float64)[:, self.order]
        self.positives = np.add.reduceat(w, self.starts, axis=1)  # (B, classes present overall)
        self.present = self.positives > 0
        self.n_present = self.present.sum(axis=1)

    @classmethod
    def draw(cls, labels, n_classes: int, resamples: int, seed: int) -> Resamples:
        return cls(labels, resample_weights(len(labels), resamples, seed), n_classes)

    def mean_ap(self, scores: np.ndarray) -> np.ndarray:
        """(B,) mAP (fraction) of one configuration's scores (V, C) in every resample."""
        scores = np.asarray(scores)
        n_videos = self.labels.size
        if scores.shape != (n_videos, self.n_classes):
            raise ValueError(f"scores {scores.shape}, expected {(n_videos, self.n_classes)}")
        own = scores[np.arange(n_videos), self.labels]
        # ahead[i, j]: video j scores at least as high as positive i in i's class (ties admitted
        # whole)
        ahead = scores[:, self.labels].T >= own[:, None]
        # integer-valued float32 sums of at most V weights are exact
        counts = self.weights @ np.concatenate([ahead, ahead & self.same]).astype(np.float32).T
        admitted, hits = counts[:, :n_videos], counts[:, n_videos:]
        precision = np.divide(hits, admitted, out=np.zeros_like(hits), where=admitted > 0)
        contrib = (self.weights * precision).astype(np.float64)[:, self.order]
        num = np.add.reduceat(contrib, self.starts, axis=1)
        ap = np.divide(num, self.positives, out=np.zeros_like(num), where=self.present)
        return np.divide(
            ap.sum(axis=1), self.n_present, out=np.full(len(ap), np.nan), where=self.n_present > 0
        )


def weighted_mean_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) mAP (fraction) per row of weights (B, V): non-interpolated AP per class, mean over the
    classes with a positive of non-zero weight in that row (metrics.mean_ap's convention)."""
    scores = np.asarray(scores)
    return Resamples(labels, weights, scores.shape[1]).mean_ap(scores)


def seed_weights(n_seeds: int, resamples: int, seed: int) -> np.ndarray:
    """(B, S) float weights that average each resample over a resample of the seeds (rows sum to 1).

    The video bootstrap alone leaves out how much another set of seeds would move the mean; drawing
    the seeds with replacement inside every resample puts that variation into the interval too."""
    return resample_weights(n_seeds, resamples, seed, stream=1) / float(n_seeds)


def seed_mean(per_seed: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, ...) replicates of the seed mean from per-seed replicates (S, B, ...) and seed_weights
    (B, S)."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    return np.einsum("sb...,bs->b...", per_seed, weights)


def interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (the resamples): (lower, upper) at `level` (e.g. 0.95).

    A resample where the quantity is undefined (NaN: e.g. none of a subset's videos drawn) is left
    out."""
    tail = 50.0 * (1.0 - level)
    lo, hi = np.nanpercentile(
        np.asarray(replicates, dtype=np.float64), [tail, 100.0 - tail], axis=0
    )
    return lo, hi


def videos_to_exclude(n_videos: int, distance: float, half_width: float) -> int | None:
    """Videos needed for an interval of half-width `half_width` at n_videos, shrinking as
    1/sqrt(videos), to shrink below `distance` (how far the point is from the bound to exclude);
    None if distance <= 0."""
    if not distance > 0 or not np.isfinite(distance) or not np.isfinite(half_width):
        return None
    return max(n_videos, int(math.ceil(n_videos * (half_width / distance) ** 2)))
