"""Property tests of the test-time samplers (dkp.sampling) over random videos."""

from __future__ import annotations

import numpy as np
import pytest

from dkp import sampling
from dkp.configs import Config
from dkp.frames import kept_indices


def _video(rng, fps=1.0):
    """Random duration and extraction timestamps like `dkp frames` gives (one per 1/fps s,
    jittered)."""
    duration = float(rng.uniform(0.5, 300.0))
    n = max(1, int(duration * fps))
    times = np.sort((np.arange(n) + rng.uniform(0, 1)) / fps)
    return times, duration


def _brute_nearest(times, target):
    d = np.abs(times - target)
    return int(np.flatnonzero(d == d.min())[0])  # ties: the earlier frame


@pytest.mark.parametrize("strategy", ["adaptive", "fixed"])
def test_counts_order_bounds(strategy):
    rng = np.random.default_rng(1)
    for _ in range(300):
        times, duration = _video(rng, fps=float(rng.choice([0.25, 1.0, 2.0])))
        n = int(rng.integers(1, 64))
        r = float(rng.uniform(0.5, 60.0))
        idx = sampling.sample(times, duration, strategy, n=n, interval=r)
        want = n if strategy == "adaptive" else max(1, int(np.floor(duration / r + 0.5)))
        assert len(idx) == want
        assert idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < len(times)
        assert np.all(np.diff(times[idx]) >= 0)


def test_nearest_frame_to_each_segment_centre():
    rng = np.random.default_rng(2)
    for _ in range(200):
        times, duration = _video(rng)
        n = int(rng.integers(1, 40))
        idx = sampling.sample(times, duration, "adaptive", n=n)
        centres = (np.arange(n) + 0.5) * duration / n
        assert [int(i) for i in idx] == [_brute_nearest(times, c) for c in centres]


def test_tie_goes_to_earlier_frame():
    times = np.array([0.0, 1.0, 2.0])
    assert sampling.nearest_indices(times, np.array([0.5, 1.5, -3.0, 9.0])).tolist() == [0, 1, 0, 2]
    pts = np.arange(10) / 2.0  # presentation times at 2 fps, as frame extraction uses it
    assert sampling.nearest_indices(pts, np.array([0.5, 1.5, 4.4, 9.0])).tolist() == [1, 3, 9, 9]
    assert sampling.nearest_indices(pts, np.array([0.25])).tolist() == [0]
    assert sampling.nearest_indices(np.array([0.0]), np.array([0.5, 3.5])).tolist() == [0, 0]
    # repeated presentation times (broken variable-rate files): the earlier of the equals
    assert sampling.nearest_indices(np.array([0.0, 1.0, 1.0]), np.array([5.0, 1.0])).tolist() == [
        1,
        1,
    ]


def test_fixed_counts_grow_with_length_adaptive_do_not():
    lengths = np.linspace(1.0, 400.0, 200)
    for r in (0.7, 5.0, 10.0, 40.0):
        fixed = [sampling.frame_count("fixed", L, interval=r) for L in lengths]
        assert fixed == sorted(fixed) and fixed[-1] > fixed[0]
    assert {sampling.frame_count("adaptive", L, n=12) for L in lengths} == {12}


def test_fixed_count_rounds_half_up_and_never_zero():
    assert sampling.fixed_count(25.0, 10.0) == 3
    assert sampling.fixed_count(24.9, 10.0) == 2
    assert sampling.fixed_count(3.0, 40.0) == 1
    assert sampling.fixed_count(0.0, 5.0) == 1


def test_short_video_repeats_nearest_frames():
    times = np.array([0.5, 1.5, 2.5])  # a 3 s video at 1 fps, asked for 8 frames
    idx = sampling.sample(times, 3.0, "adaptive", n=8)
    assert len(idx) == 8
    assert set(idx.tolist()) == {0, 1, 2}
    assert np.all(np.diff(idx) >= 0)
    single = sampling.sample(np.array([4.0]), 9.0, "fixed", interval=1.0)
    assert single.tolist() == [0] * 9


def test_positions_are_fractions_of_duration():
    pos = sampling.positions(np.array([0.0, 5.0, 10.0, 12.0]), 10.0)
    assert pos.dtype == np.float32
    assert pos.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_role_counts_follow_configuration():
    fixed = Config(
        "dste_fixed-4_rt20", "dste_fixed-4", "s1", "dste", "fixed", 4, None, None, 5.0, 20.0
    )
    assert sampling.role_counts(fixed, 100.0) == (20, 5)
    assert sampling.role_counts(fixed, 1.0) == (4, 1)  # the ratio holds in every video
    for duration in np.linspace(1.0, 400.0, 97):
        ns, nt = sampling.role_counts(fixed, float(duration))
        assert ns == 4 * nt and nt == sampling.fixed_count(float(duration), 20.0)
    teacher = Config(
        "teacher_nt5", "teacher", "baseline", "teacher", "adaptive", None, None, 5, None, None
    )
    assert sampling.role_counts(teacher, 100.0) == (0, 5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        sampling.sample(np.array([]), 10.0, "adaptive", n=3)
    with pytest.raises(ValueError):
        sampling.frame_count("uniform", 10.0, n=3)
    with pytest.raises(ValueError):
        sampling.fixed_count(10.0, 0.0)


def test_distinct_indices_drop_repeats_and_keep_order():
    times = np.arange(10) + 0.5  # a 10 s video at 1 fps
    assert (
        sampling.distinct_indices(times, 10.0, 5).tolist()
        == sampling.sample(times, 10.0, "adaptive", n=5).tolist()
    )
    dense = sampling.distinct_indices(times, 10.0, 40)
    assert dense.tolist() == list(range(10))
    assert (
        sampling.distinct_count(times, 10.0, 40) == 10
        and sampling.distinct_count(times, 10.0, 0) == 0
    )
    fixed = Config(
        "dste_fixed-8_rt2", "dste_fixed-8", "s1", "dste", "fixed", 8, None, None, 0.25, 2.0
    )
    assert sampling.config_indices(fixed, "t", times, 10.0).tolist() == [
        0,
        2,
        4,
        6,
        8,
    ]  # ties: earlier
    # 40 asked, 10 exist
    assert sampling.config_indices(fixed, "s", times, 10.0).tolist() == list(range(10))


def test_count_span_and_the_frames_every_configuration_needs():
    c4 = Config(
        "dste_adaptive-4_nt3", "dste_adaptive-4", "s1", "dste", "adaptive", 4, 12, 3, None, None
    )
    fx = Config(
        "dste_fixed-8_rt5", "dste_fixed-8", "s1", "dste", "fixed", 8, None, None, 0.625, 5.0
    )
    durations = [4.0, 30.0, 120.0]
    assert sampling.count_span([c4, fx], durations) == ((8, 192), (1, 24))
    need = sampling.demand([c4, fx])
    assert need == (("adaptive", 12), ("fixed", 5.0, 8.0))
    # adaptive: 12 whatever the length; fixed: 8 x round(L / 5)
    assert [sampling.required_count(need, d) for d in durations] == [12, 48, 192]
    # extraction at the required count over a dense video: every configuration fed what it names
    for d in durations:
        native = np.arange(int(d * 30)) / 30.0
        kept = kept_indices(native, d, 1.0, need)
        stored = native[kept]
        for c in (c4, fx):
            ns, nt = sampling.role_counts(c, d)
            assert len(sampling.config_indices(c, "s", stored, d)) == ns
            assert len(sampling.config_indices(c, "t", stored, d)) == nt
