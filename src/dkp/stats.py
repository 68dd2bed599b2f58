"""Intervals over videos and seeds: resample weights, weighted mAP, the seed part, percentile
intervals. Pure numpy.

One draw of video resample weights (B resamples x V videos, each weight the number of
times the video is drawn) is shared by every configuration and every seed, so a
difference between two configurations is computed inside each resample (paired) and its
interval is read off the same draws.

The weighted AP of a class equals `metrics.average_precision` on the resample with each
video repeated `weight` times, the k copies of a video ranked one after another (copy j of a
positive sees the j - 1 copies before it: precision (h + j) / (r + j), h and r the weighted
positives and videos of the other videos scoring at least as high). Their sum over j is
k - (r - h) (H(r + k) - H(r)), H the harmonic numbers, so the two sums h and r stay one
matrix product per configuration (videos x videos comparison matrix) and B = 2000 resamples
cost milliseconds per configuration. Admitting the copies as one tie group instead would
give every copy (h + k) / (r + k) and push each replicate's AP up.

The seed part (seed_multipliers): each replicate adds c_b @ (per-seed points), with rows c_b
summing to zero and drawn so that for any contrast of the seeds the added term is
sd / sqrt(S) * t_{S-1} (sd the seeds' standard deviation): the t pivot of a mean over S
seeds, honest at any S >= 2, where resampling the seeds with replacement would be too narrow
by (S - 1) / S in variance and rest on a plug-in of S - 1 degrees of freedom.
"""

from __future__ import annotations

import functools
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
        # videos grouped by class (scored in this order): a class's videos are one contiguous
        # block, so per-class sums are reduceat over the blocks and same-class counts a product
        # per block
        self.order = np.argsort(self.labels, kind="stable")
        self.sorted_labels = self.labels[self.order]
        self.classes, self.starts = np.unique(self.sorted_labels, return_index=True)
        self.blocks = list(zip(self.starts.tolist(), [*self.starts[1:].tolist(), n_videos]))
        self.sorted_weights = np.ascontiguousarray(self.weights[:, self.order])
        self.copies = self.sorted_weights.astype(np.int64)
        self.positives = np.add.reduceat(
            self.sorted_weights.astype(np.float64), self.starts, axis=1
        )  # (B, classes present overall)
        self.present = self.positives > 0
        self.n_present = self.present.sum(axis=1)
        top = int(np.ceil(self.weights.astype(np.float64).sum(axis=1).max())) + 1
        self.harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])

    @classmethod
    def draw(cls, labels, n_classes: int, resamples: int, seed: int) -> Resamples:
        return cls(labels, resample_weights(len(labels), resamples, seed), n_classes)

    def mean_ap(self, scores: np.ndarray) -> np.ndarray:
        """(B,) mAP (fraction) of one configuration's scores (V, C) in every resample."""
        scores = np.asarray(scores)
        n_videos = self.labels.size
        if scores.shape != (n_videos, self.n_classes):
            raise ValueError(f"scores {scores.shape}, expected {(n_videos, self.n_classes)}")
        scores = scores[self.order]
        own = scores[np.arange(n_videos), self.sorted_labels]
        # ahead[i, j]: another video j scores at least as high as positive i in i's class (ties
        # between different videos admitted whole); i's own copies are ranked after them
        ahead = (scores[:, self.sorted_labels].T >= own[:, None]).astype(np.float32)
        np.fill_diagonal(ahead, 0.0)
        # integer-valued float32 sums of at most V weights are exact
        w = self.sorted_weights
        others = (w @ ahead.T).astype(np.int64)
        hits = np.empty(others.shape, dtype=np.float32)  # those of i's own class
        for a, b in self.blocks:
            np.matmul(w[:, a:b], ahead[a:b, a:b].T, out=hits[:, a:b])
        k = self.copies
        # sum over copies j = 1..k of (hits + j) / (others + j)
        contrib = k - (others - hits) * (self.harmonic[others + k] - self.harmonic[others])
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


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t with df >= 1 degrees of freedom (numerical, ~1e-9)."""
    if not 0.0 < q < 1.0 or df < 1:
        raise ValueError(f"t_quantile needs 0 < q < 1 and df >= 1, found q={q!r}, df={df!r}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:  # Simpson on [0, x] of the density, plus the lower half
        grid = np.linspace(0.0, x, 4001)
        f = np.exp(log_c - (df + 1) / 2 * np.log1p(grid**2 / df))
        return 0.5 + (grid[1] - grid[0]) / 3 * (
            f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()
        )

    lo, hi = 0.0, 1.0
    while cdf(hi) < q:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return 0.5 * (lo + hi)


def seed_multipliers(n_seeds: int, resamples: int, seed: int) -> np.ndarray:
    """(B, S) multipliers c, rows summing to 0: replicate b's seed part is c[b] @ (per-seed points).

    c = (z - mean(z)) * sqrt(nu / chi2_nu) / sqrt(S (S - 1)), z standard normal, nu = S - 1: for
    any contrast of the seeds the term is sd / sqrt(S) times a t_nu draw. One seed carries no
    seed variation to estimate: zeros (the interval is then over videos only, and says so)."""
    if n_seeds < 2:
        return np.zeros((resamples, n_seeds))
    rng = np.random.default_rng([seed, 1])
    z = rng.standard_normal((resamples, n_seeds))
    nu = n_seeds - 1
    scale = np.sqrt(nu / rng.chisquare(nu, resamples)) / math.sqrt(n_seeds * nu)
    return (z - z.mean(axis=1, keepdims=True)) * scale[:, None]


def with_seed_part(video: np.ndarray, seed_points: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """(B, ...) replicates: the video replicates of the seed mean (B, ...) plus the seed part,
    mult (B, S) @ the per-seed points (S, ...)."""
    seed_points = np.asarray(seed_points, dtype=np.float64)
    return np.asarray(video, dtype=np.float64) + np.tensordot(mult, seed_points, axes=(1, 0))


def seed_half_width(seed_values: np.ndarray, level: float) -> float:
    """Half-width of the seed part of an interval: t_{S-1} quantile x sd / sqrt(S) (0 for one
    seed)."""
    v = np.asarray(seed_values, dtype=np.float64)
    if v.size < 2:
        return 0.0
    return t_quantile(0.5 + level / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)


def centred(replicates: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Replicates shifted so their mean is the point (over axis 0).

    The bootstrap mean of a finite-sample AP sits above the sample's own (+1 point at 38 % mAP,
    240 videos, 20 classes: the AP estimator's upward bias at a dozen positives a class, which the
    resamples reproduce on top of the sample's). The point is what the interval is for (the mAP
    expected of a validation set of this size), so the replicates are centred on it; their spread
    is unchanged."""
    replicates = np.asarray(replicates, dtype=np.float64)
    return replicates - np.nanmean(replicates, axis=0) + np.asarray(point, dtype=np.float64)


def interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (the resamples): (lower, upper) at `level` (e.g. 0.95).

    A resample where the quantity is undefined (NaN: e.g. none of a subset's videos drawn) is left
    out."""
    tail = 50.0 * (1.0 - level)
    lo, hi = np.nanpercentile(
        np.asarray(replicates, dtype=np.float64), [tail, 100.0 - tail], axis=0
    )
    return lo, hi


def videos_to_exclude(
    n_videos: int, distance: float, video_half: float, seed_half: float = 0.0
) -> int | None:
    """Validation videos at which an interval whose video part (half-width `video_half` at
    n_videos) shrinks as 1/sqrt(videos) and whose seed part (`seed_half`) stays, combined as
    sqrt(video^2 + seed^2), gets narrower than `distance` (how far the point is from the bound to
    exclude); None when no number of videos does (distance <= seed part)."""
    if not (distance > 0 and np.isfinite(distance) and np.isfinite(video_half)):
        return None
    room = distance**2 - seed_half**2
    if room <= 0:
        return None
    return max(n_videos, int(math.ceil(n_videos * video_half**2 / room)))


def seeds_to_exclude(
    n_seeds: int, distance: float, video_half: float, seed_sd: float, level: float, most: int = 64
) -> int | None:
    """Seeds at which sqrt(video_half^2 + (t_{S-1} seed_sd / sqrt(S))^2) < distance, the videos
    as now; None when the video part alone is too wide or more than `most` seeds are needed."""
    if not (distance > 0 and np.isfinite(distance) and np.isfinite(video_half)):
        return None
    if video_half >= distance:
        return None
    for s in range(max(2, n_seeds), most + 1):
        seed_half = t_quantile(0.5 + level / 2, s - 1) * seed_sd / math.sqrt(s)
        if video_half**2 + seed_half**2 < distance**2:
            return s
    return None
