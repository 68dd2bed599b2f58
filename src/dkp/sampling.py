"""Test-time frame sampling: which extracted frames a configuration feeds each network.

Pure functions over one video's frame timestamps (seconds, ascending) and its
duration L (seconds). Both strategies split the video into n equal segments and
take, for each segment, the extracted frame whose timestamp is nearest the
segment's centre (ties go to the earlier frame):

- adaptive: n is fixed per configuration; the interval L / n adapts to L.
- fixed: the teacher interval r_t (seconds) is fixed; n_t = max(1, round_half_up(L / r_t))
  and n_s = ratio * n_t, so the ratio holds in every video (supplementary, fixed sampling).
  Rounding to nearest (not ceil) keeps the mean interval unbiased around r_t.

A video with fewer extracted frames than segments is not an error: neighbouring
segments share their nearest frame. A configuration is fed, and charged for, its
distinct frames only (config_indices); its nominal count is what it asks for.
"""

from __future__ import annotations

import math

import numpy as np

STRATEGIES = ("adaptive", "fixed")


def fixed_count(duration: float, interval: float) -> int:
    """Frames under fixed sampling: max(1, round(L / r)), halves rounded up."""
    if not interval > 0:
        raise ValueError(f"interval must be > 0, found {interval!r}")
    return max(1, int(math.floor(max(duration, 0.0) / interval + 0.5)))


def segment_centres(duration: float, n: int) -> np.ndarray:
    """Centre times (seconds) of n equal segments of [0, L]."""
    if n < 1:
        raise ValueError(f"n must be >= 1, found {n!r}")
    return (np.arange(n, dtype=np.float64) + 0.5) * (max(duration, 0.0) / n)


def nearest_indices(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame nearest each target time (ties, repeated times included: the earlier
    frame). Used for test-time sampling and for frame extraction from presentation times.

    `times` must be ascending; the result is non-decreasing when `targets` is.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise ValueError("a video needs at least one extracted frame to sample from")
    targets = np.asarray(targets, dtype=np.float64)
    if times.size == 1:
        return np.zeros(targets.shape, dtype=np.int64)
    right = np.searchsorted(times, targets, side="left").clip(1, times.size - 1)
    earlier = np.abs(times[right - 1] - targets) <= np.abs(times[right] - targets)
    return np.where(earlier, right - 1, right).astype(np.int64)


def frame_count(
    strategy: str, duration: float, n: int | None = None, interval: float | None = None
) -> int:
    """How many frames a strategy takes from a video of this duration."""
    if strategy == "adaptive":
        if n is None or n < 1:
            raise ValueError(f"adaptive sampling needs n >= 1, found {n!r}")
        return int(n)
    if strategy == "fixed":
        if interval is None:
            raise ValueError("fixed sampling needs an interval")
        return fixed_count(duration, interval)
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def sample(
    times: np.ndarray,
    duration: float,
    strategy: str,
    n: int | None = None,
    interval: float | None = None,
) -> np.ndarray:
    """Indices into `times` of the frames a strategy feeds the network, in time order."""
    count = frame_count(strategy, duration, n=n, interval=interval)
    return nearest_indices(times, segment_centres(duration, count))


def positions(times: np.ndarray, duration) -> np.ndarray:
    """Temporal positions in [0, 1] (timestamp / L) for the DKP position encoding.

    `duration` is a scalar or one value per timestamp; a non-positive duration gives 0.
    """
    times = np.asarray(times, dtype=np.float64)
    d = np.broadcast_to(np.asarray(duration, dtype=np.float64), times.shape)
    safe = np.where(d > 0, d, 1.0)
    return np.where(d > 0, np.clip(times / safe, 0.0, 1.0), 0.0).astype(np.float32)


def role_counts(config, duration: float) -> tuple[int, int]:
    """Nominal (n_s, n_t) a configuration asks of a video of this duration; 0 for an unset role.

    Fixed: n_t from r_t, n_s = ratio * n_t."""
    if config.strategy == "fixed":
        nt = fixed_count(duration, config.rt)
        return (int(round(config.ratio * nt)) if config.ratio is not None else 0), nt
    return int(config.ns or 0), int(config.nt or 0)


def distinct_indices(times: np.ndarray, duration: float, count: int) -> np.ndarray:
    """The distinct frames nearest the centres of `count` equal segments, in time order."""
    return np.unique(nearest_indices(times, segment_centres(duration, count)))


def config_indices(config, role: str, times: np.ndarray, duration: float) -> np.ndarray:
    """The distinct frames a configuration feeds role "s" or "t" of a video."""
    count = role_counts(config, duration)[0 if role == "s" else 1]
    if count < 1:
        raise ValueError(f"configuration {config.name} gives role {role!r} no frames")
    return distinct_indices(times, duration, count)


def distinct_count(times: np.ndarray, duration: float, count: int) -> int:
    """How many distinct frames `count` segment centres land on (0 for count 0)."""
    return int(distinct_indices(times, duration, count).size) if count > 0 else 0


def count_range(
    configs, times: list[np.ndarray], durations
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((n_s low, high), (n_t low, high)): the distinct frame counts the configurations feed,
    over the given videos; the range DKP is trained on when train.student ns/nt_range is auto."""
    ns_seen, nt_seen = set(), set()
    for t, d in zip(times, durations):
        memo: dict[int, int] = {}
        for c in configs:
            ns, nt = role_counts(c, float(d))
            for n, seen in ((ns, ns_seen), (nt, nt_seen)):
                if n > 0:
                    if n not in memo:
                        memo[n] = distinct_count(t, float(d), n)
                    seen.add(memo[n])
    if not ns_seen or not nt_seen:
        raise ValueError(
            "count_range needs configurations that use both roles and at least one video"
        )
    return (min(ns_seen), max(ns_seen)), (min(nt_seen), max(nt_seen))


def draw_count(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer in [low, high], log-uniform: small counts, where most configurations sit,
    are drawn as often per octave as large ones."""
    x = np.exp(rng.uniform(np.log(low), np.log(high + 1)))
    return int(min(high, max(low, np.floor(x))))
