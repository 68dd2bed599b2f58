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
distinct frames only (config_indices); its nominal count is what it asks for. Frame
extraction gives every video at least the largest count any configuration asks of it
(required_count), so with a dense enough video every configuration is fed what it names.
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


def segment_centres(duration: float, n: int, offsets=0.5) -> np.ndarray:
    """Times (seconds) at `offsets` (0.5: the centres; one per segment, or one for all) of n equal
    segments of [0, L]."""
    if n < 1:
        raise ValueError(f"n must be >= 1, found {n!r}")
    return (np.arange(n, dtype=np.float64) + offsets) * (max(duration, 0.0) / n)


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


def distinct_indices(times: np.ndarray, duration: float, count: int, offsets=0.5) -> np.ndarray:
    """The distinct frames nearest `count` points of equal segments, in time order: the segment
    centres (offsets 0.5, test time), or a random point in each segment (training draws offsets
    uniform in [0, 1)). One rule for both: a configuration is fed its distinct frames."""
    return np.unique(nearest_indices(times, segment_centres(duration, count, offsets)))


def config_indices(config, role: str, times: np.ndarray, duration: float, offsets=0.5):
    """The distinct frames a configuration feeds role "s" or "t" of a video (offsets: see
    distinct_indices)."""
    count = role_counts(config, duration)[0 if role == "s" else 1]
    if count < 1:
        raise ValueError(f"configuration {config.name} gives role {role!r} no frames")
    return distinct_indices(times, duration, count, offsets)


def distinct_count(times: np.ndarray, duration: float, count: int) -> int:
    """How many distinct frames `count` segment centres land on (0 for count 0)."""
    return int(distinct_indices(times, duration, count).size) if count > 0 else 0


def count_span(configs, durations) -> tuple[tuple[int, int], tuple[int, int]]:
    """((n_s low, high), (n_t low, high)): the nominal counts the configurations ask of videos of
    these durations (roles a configuration does not use left out)."""
    pairs = [role_counts(c, float(d)) for c in configs for d in durations]
    ns = [a for a, _ in pairs if a > 0] or [0]
    nt = [b for _, b in pairs if b > 0] or [0]
    return (min(ns), max(ns)), (min(nt), max(nt))


def demand(configs) -> tuple:
    """What the configurations ask of a video, as a hashable summary for required_count:
    ("adaptive", the largest n) and ("fixed", r_t, ratio) per fixed configuration."""
    largest = max(
        (int(max(c.ns or 0, c.nt or 0)) for c in configs if c.strategy != "fixed"), default=0
    )
    fixed = {
        ("fixed", float(c.rt), float(c.ratio) if c.ratio is not None else 1.0)
        for c in configs
        if c.strategy == "fixed"
    }
    return (("adaptive", largest), *sorted(fixed))


def required_count(demand_: tuple, duration: float) -> int:
    """The largest nominal count (n_s or n_t) any configuration of `demand_` asks of a video of
    this duration: the frames it must have for every configuration to be fed what it names."""
    need = 0
    for item in demand_:
        if item[0] == "adaptive":
            need = max(need, int(item[1]))
        else:
            _, rt, ratio = item
            need = max(need, int(round(max(ratio, 1.0) * fixed_count(duration, rt))))
    return need
