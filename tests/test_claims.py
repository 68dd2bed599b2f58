"""The six claim verdicts: exact constructed curves (each claim where it holds and where it fails),
then the whole verdict path on simulated predictions: null calibration and power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dkp import stats
from dkp.figures import claims, verdicts
from dkp.figures import curve_geometry as geometry

X = claims.Draws.exact  # a table's mAP taken as exact: zero-width intervals, one seed

FP = {"low_fraction": 0.33, "similar_from": 0.5, "similar_margin": 1.0}
G = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0])


def rows(*curves) -> pd.DataFrame:
    """curves: (group, figure, strategy, ratio, gflops, mAP) -> a curves.csv-like table."""
    out = []
    for group, figure, strategy, ratio, g, m in curves:
        out += [
            {
                "group": group,
                "figure": figure,
                "strategy": strategy,
                "ratio": ratio,
                "gflops": x,
                "mAP": y,
            }
            for x, y in zip(g, m)
        ]
    return pd.DataFrame(out)


def plateau(g, top, depth, scale=2.0):
    """A curve rising to `top`, `depth` points below it at zero GFLOPs."""
    return top - depth * np.exp(-np.asarray(g) / scale)


def s1(a4, a8, f4, f8, g_fixed=G - 1.0):
    return rows(
        ("dste_adaptive-4", "s1", "adaptive", 4, G, a4),
        ("dste_adaptive-8", "s1", "adaptive", 8, G, a8),
        ("dste_fixed-4", "s1", "fixed", 4, g_fixed, f4),
        ("dste_fixed-8", "s1", "fixed", 8, g_fixed, f8),
    )


# the paper's shape: adaptive drops at low GFLOPs, fixed less; ratio 8 a bit above 4; all meet
# above ~8
PAPER_S1 = s1(
    plateau(G, 80, 30), plateau(G, 80, 26), plateau(G - 1, 80, 12), plateau(G - 1, 80, 10)
)


def test_interpolation_is_piecewise_linear_and_limited_to_the_overlap():
    a = geometry.make_curve("a", [0, 10], [0, 10])
    b = geometry.make_curve("b", [5, 20, 5], [2, 2, 4])  # repeated GFLOPs are averaged: (5, 3)
    assert b.g.tolist() == [5, 20] and b.m.tolist() == [[3, 2]]
    d = geometry.diff(a, b)
    assert (d.lo, d.hi) == (5, 10)  # no extrapolation beyond a's end at 10
    # a - b = x - (3 - (x-5)/15): 2 at x=5, 7 + 1/3 at x=10, linear: mean is the midpoint
    assert d.min[0] == pytest.approx(2.0) and d.max[0] == pytest.approx(7 + 1 / 3)
    assert d.mean[0] == pytest.approx((2.0 + 7 + 1 / 3) / 2)
    assert geometry.diff(a, geometry.make_curve("c", [11, 12], [0, 1])) is None


def test_mean_difference_is_exact_across_a_crossing():
    a = geometry.make_curve("a", [0, 1, 2], [0, 2, 0])
    b = geometry.make_curve("b", [0, 2], [1, 1])
    # triangle of area 2 over length 2, minus 1
    assert geometry.diff(a, b).mean[0] == pytest.approx(0.0)


def test_claim1_holds_and_fails():
    assert claims.claim_adaptive_vs_fixed(X(PAPER_S1), FP["low_fraction"]).status == claims.HOLDS
    swapped = s1(
        plateau(G, 80, 12), plateau(G, 80, 10), plateau(G - 1, 80, 30), plateau(G - 1, 80, 26)
    )
    v = claims.claim_adaptive_vs_fixed(X(swapped), FP["low_fraction"])
    assert v.status == claims.FAILS and v.numbers["Fixed-4 minus Adaptive-4"]["effect"] < 0
    mixed = s1(
        plateau(G, 80, 30), plateau(G, 80, 10), plateau(G - 1, 80, 12), plateau(G - 1, 80, 30)
    )
    # one part fails
    assert claims.claim_adaptive_vs_fixed(X(mixed), FP["low_fraction"]).status == claims.FAILS


def test_claim1_not_testable_when_curves_meet_only_at_high_gflops():
    far = s1(
        plateau(G, 80, 30),
        plateau(G, 80, 26),
        plateau(G + 30, 80, 12),
        plateau(G + 30, 80, 10),
        G + 30,
    )
    v = claims.claim_adaptive_vs_fixed(X(far), FP["low_fraction"])
    assert v.status == claims.UNTESTABLE and "No overlap" in v.evidence


def test_claim2_holds_and_fails():
    v = claims.claim_ratio(X(PAPER_S1), FP["low_fraction"])
    assert v.status == claims.HOLDS and v.numbers["Adaptive-8 minus Adaptive-4"]["effect"] > 0
    assert v.numbers["Fixed-8 minus Fixed-4"]["effect"] > 0
    four_better = s1(
        plateau(G, 80, 26), plateau(G, 80, 30), plateau(G - 1, 80, 10), plateau(G - 1, 80, 12)
    )
    assert claims.claim_ratio(X(four_better), FP["low_fraction"]).status == claims.FAILS


def test_claim3_holds_and_fails():
    v = claims.claim_similar_above(X(PAPER_S1), FP["similar_from"], FP["similar_margin"])
    assert v.status == claims.HOLDS
    assert v.numbers["max_spread_above"]["effect"] <= 1.0
    assert v.numbers["measured_threshold"] <= v.numbers["threshold"]
    apart = s1(
        plateau(G, 80, 30), plateau(G, 76, 26), plateau(G - 1, 80, 12), plateau(G - 1, 80, 10)
    )
    v = claims.claim_similar_above(X(apart), FP["similar_from"], FP["similar_margin"])
    assert v.status == claims.FAILS and v.numbers["max_spread_above"]["effect"] > 3.0
    assert v.numbers["measured_threshold"] is None


def test_claim3_measured_threshold_is_where_the_spread_enters_the_margin():
    # two lines: spread 4 - x/2 falls to the 1-point margin at x = 6 and stays below it
    lines = rows(
        ("dste_adaptive-4", "s1", "adaptive", 4, [0, 10], [0, 10]),
        ("dste_fixed-4", "s1", "fixed", 4, [0, 10], [4, 9]),
    )
    v = claims.claim_similar_above(X(lines), 0.7, 1.0)
    assert v.numbers["measured_threshold"] == pytest.approx(6.0, abs=1e-9)
    assert v.numbers["threshold"] == pytest.approx(7.0)
    # the spread reaches the margin at x = 10: not strictly inside
    assert v.status == claims.INCONCLUSIVE
    assert claims.claim_similar_above(X(lines), 0.7, 1.01).status == claims.HOLDS
    # 1.5 at x = 5, mean -0.25
    assert claims.claim_similar_above(X(lines), 0.5, 1.0).status == claims.INCONCLUSIVE


def s2(nt5, ns20, teacher):
    g = np.array([3.0, 6.0, 9.0, 12.0, 15.0, 18.0])
    return rows(
        ("dste_nt5", "s2", "adaptive", 1, g[:4] + 1, nt5),
        ("dste_ns20", "s2", "adaptive", 4, g[1:] + 1, ns20),
        ("teacher", "baseline", "adaptive", None, g, teacher),
    )


TEACHER = np.array([60.0, 68, 72, 74, 75, 75.5])


def test_claim4_holds_and_fails():
    good = s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)
    assert claims.claim_s2_low(X(good), FP["low_fraction"]).status == claims.HOLDS
    bad = s2([55, 60, 62, 63], [58, 60, 64, 70, 76], TEACHER)
    v = claims.claim_s2_low(X(bad), FP["low_fraction"])
    assert v.status == claims.FAILS and v.numbers["nt-5 minus Teacher"]["effect"] < 0
    one = s2([70, 73, 74, 74.5], [58, 60, 64, 70, 76], TEACHER)
    assert claims.claim_s2_low(X(one), FP["low_fraction"]).status == claims.FAILS


def test_claim5_holds_and_fails():
    good = s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)
    v = claims.claim_ns20_high(X(good), FP["low_fraction"])
    assert v.status == claims.HOLDS and v.numbers["at_top"]["effect"] > 0
    flat = s2([70, 73, 74, 74.5], [72, 73, 73.2, 73.3, 73.3], TEACHER)
    assert claims.claim_ns20_high(X(flat), FP["low_fraction"]).status == claims.FAILS


def test_s2_claims_not_testable_without_teacher():
    table = s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)
    table = table[table["group"] != "teacher"]
    assert claims.claim_s2_low(X(table), 0.33).status == claims.UNTESTABLE
    assert claims.claim_ns20_high(X(table), 0.33).status == claims.UNTESTABLE


def test_claim6_on_per_video_gains_with_the_shared_resamples():
    # two seeds; a video without frames in seed 0
    gains = np.array([[0.4, -0.025, np.nan], [0.3, 0.05, 0.1]])
    w = stats.resample_weights(3, 500, 0)
    v = claims.claim_s3(gains, w)
    e = v.effects[0]
    assert e.point == pytest.approx(
        ((0.4 - 0.025) / 2 + 0.45 / 3) / 2
    ) and e.seeds == pytest.approx((0.1875, 0.15))
    assert e.lo <= e.point <= e.hi and v.numbers["videos"] == 3
    assert claims.claim_s3(-np.abs(gains) - 0.1, w).status == claims.FAILS
    assert claims.claim_s3(np.full((2, 3), np.nan), w).status == claims.UNTESTABLE
    exact = claims.claim_s3(np.array([[0.2, 0.1]]), np.ones((1, 2)))
    assert exact.status == claims.HOLDS


def test_evaluate_all_gives_six_verdicts_in_order():
    table = pd.concat([PAPER_S1, s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)])
    d = X(table)
    d = claims.Draws(
        d.table, d.seeds, d.boot, s3_gain=np.array([[0.2, 0.1]]), weights=np.ones((1, 2))
    )
    verdicts = claims.evaluate_all(d, FP)
    assert [v.number for v in verdicts] == [1, 2, 3, 4, 5, 6]
    assert all(v.status == claims.HOLDS for v in verdicts), [
        (v.number, v.evidence) for v in verdicts
    ]


def test_decide_is_three_valued_and_needs_every_seed():
    boot = np.linspace(1.0, 3.0, 101)
    e = claims.decide("x", np.r_[2.0, 1.5, 2.5, boot], 2, 0.95, 240)
    assert e.status == claims.HOLDS and claims.fmt_effect(e).endswith("2 of 2 seeds > 0")
    assert (
        claims.decide("x", np.r_[2.0, -0.5, 4.5, boot], 2, 0.95, 240).status == claims.INCONCLUSIVE
    )
    assert claims.decide("x", -np.r_[2.0, 1.5, 2.5, boot], 2, 0.95, 240).status == claims.FAILS
    wide = claims.decide("x", np.r_[1.0, 0.5, 1.5, boot - 2.0], 2, 0.95, 240)
    assert wide.status == claims.INCONCLUSIVE and wide.videos_needed > 240
    assert "validation videos" in verdicts.settle(wide, 240)
    eq = claims.decide("spread", np.r_[1.0, 1.2, 0.8, boot - 0.5], 2, 0.95, 240, bound=3.0, side=-1)
    assert eq.status == claims.HOLDS


# --- the whole verdict path on simulated predictions: null calibration and power ------------------

# curves of S-1 and S-2 with their GFLOPs; the default run's shapes (4 points a curve, interleaved
# GFLOPs)
SIM_CURVES = {
    "dste_adaptive-4": ("s1", "adaptive", 4, [1.0, 2.0, 3.0, 4.0]),
    "dste_adaptive-8": ("s1", "adaptive", 8, [1.25, 2.5, 3.75, 5.0]),
    "dste_fixed-4": ("s1", "fixed", 4, [0.9, 1.8, 2.7, 3.6]),
    "dste_fixed-8": ("s1", "fixed", 8, [1.1, 2.2, 3.3, 4.4]),
    "dste_nt5": ("s2", "adaptive", 4, [2.0, 2.6, 3.2]),
    "dste_ns20": ("s2", "adaptive", 4, [2.6, 4.0, 6.0]),
    "teacher": ("baseline", "adaptive", None, [1.5, 2.5, 4.0, 6.0, 8.0]),
}
SIM_TABLE = pd.DataFrame(
    [
        {"group": g, "figure": f, "strategy": s, "ratio": r, "gflops": x}
        for g, (f, s, r, xs) in SIM_CURVES.items()
        for x in xs
    ]
)
# Noise sizes: single-configuration mAP ~55-65 % with a video-bootstrap half-width of ~5 points at
# 240 videos (the 2.7-point standard error statistics.md measured for the report's metric); each
# configuration and seed has its own per-video noise (SIGMA, so neighbouring points wiggle by 1-2
# points as in the default run's curves), and each seed's model a quality shift per curve (TAU:
# seeds of one configuration then span ~3.5 mAP points). With TAU = 0.08 (~5 points) claims 1-2 say
# "fails" in 10-15 % of null runs: three seeds cannot bound a seed effect that large (see
# test_null_with_large_seed_shifts).
SIGMA, TAU, V, C, B = 0.6, 0.04, 240, 20, 200


def strength(g):
    """Class signal at g GFLOPs: the same for every curve (identical by construction), rising and
    saturating like the default run's curves (about +5 mAP points from the first to the second
    point)."""
    return 1.9 + 0.6 * (1.0 - np.exp(-np.asarray(g) / 1.5))


def simulate(run: int, seeds: int = 3, bonus=None, s3_mean: float = 0.0) -> claims.Draws:
    """One simulated run: predictions of every configuration and seed, scored on one shared resample
    draw.

    bonus: {group: extra class signal}, the injected effect; without it every curve is the same."""
    rng = np.random.default_rng(run)
    labels = rng.permutation(np.arange(V) % C)
    onehot = np.eye(C)[labels]
    # each video's difficulty, shared by configurations and seeds
    shared = rng.standard_normal((V, C))
    # row 0: no resampling
    w = np.vstack([np.ones(V, dtype=np.int32), stats.resample_weights(V, B, run)])
    draws = stats.Resamples(labels, w, C)
    rows = np.zeros((seeds, 1 + B, len(SIM_TABLE)))
    for s in range(seeds):
        shift = {g: TAU * rng.standard_normal() for g in SIM_CURVES}
        for k, r in enumerate(SIM_TABLE.itertuples()):
            a = strength(r.gflops) + shift[r.group] + (bonus or {}).get(r.group, 0.0)
            scores = (a * onehot + shared + SIGMA * rng.standard_normal((V, C))).astype(np.float32)
            rows[s, :, k] = 100 * draws.mean_ap(scores)
    video_gain = 0.1 * rng.standard_normal(V)
    gains = s3_mean + video_gain[None] + 0.05 * rng.standard_normal((seeds, V))
    sw = stats.seed_weights(seeds, B, run)
    return claims.Draws(
        SIM_TABLE, rows[:, 0], stats.seed_mean(rows[:, 1:], sw), 0.95, V, gains, w[1:], (), sw
    )


def verdict_rates(runs, **kw) -> dict[int, dict[str, float]]:
    from threadpoolctl import threadpool_limits

    counts = {}
    with threadpool_limits(
        1
    ):  # small matrix products: BLAS threads only contend on a loaded machine
        for run in runs:
            for v in claims.evaluate_all(simulate(run, **kw), FP | {"similar_margin": 2.0}):
                counts.setdefault(v.number, []).append(v.status)
    return {
        n: {s: st.count(s) / len(st) for s in (claims.HOLDS, claims.FAILS, claims.INCONCLUSIVE)}
        for n, st in counts.items()
    }


def test_simulated_noise_has_the_measured_size():
    d = simulate(0)
    lo, hi = stats.interval(d.boot, 0.95)
    assert 3.5 < np.median((hi - lo) / 2) < 6.5  # ~1.96 x 2.7 points
    assert 45 < d.point.min() and d.point.max() < 75


def test_null_calibration_no_claim_commits_in_more_than_5_percent_of_runs():
    """Identical curves with the measured noise, 100 runs of the whole path: holds or fails in at
    most 5 % of runs (7 of 100 allowed: the binomial sd of a 5 % rate over 100 runs is 2.2 %).

    Claim 3 is an equivalence: with identical curves "holds" is the right answer, so only its false
    "fails" counts here."""
    rates = verdict_rates(range(100))
    for n, r in rates.items():
        wrong = r[claims.FAILS] if n == 3 else r[claims.HOLDS] + r[claims.FAILS]
        assert wrong <= 0.07, (n, rates)


@pytest.mark.xfail(
    strict=True,
    reason="seed shifts of ~5 mAP points per curve: three seeds cannot bound them; "
    "claims 1-2 say fails in 10-15 % of null runs",
)
def test_null_with_large_seed_shifts():
    global TAU
    saved, TAU = TAU, 0.08
    try:
        rates = verdict_rates(range(40))
    finally:
        TAU = saved
    assert all(r[claims.HOLDS] + r[claims.FAILS] <= 0.07 for n, r in rates.items() if n != 3), rates


def test_power_an_effect_of_the_measured_size_is_detected():
    """Claim 4 with +3.5-5 mAP for nt-5 and ns-20 over Teacher (the default run measured +3.8 and
    +4.4): both parts must hold, which they do in about half of the runs (measured 16 of 30) at 240
    videos and three seeds; +6-8 mAP holds in most. Claim 6 with the measured +0.146 gain holds in
    every run."""
    bonus = {"dste_nt5": 0.12, "dste_ns20": 0.12}
    d = simulate(1000, bonus=bonus)
    v4 = claims.claim_s2_low(d, FP["low_fraction"])
    assert all(3.0 < e.point < 6.5 for e in v4.effects), v4.evidence
    rates = verdict_rates(range(1000, 1030), bonus=bonus, s3_mean=0.146)
    assert rates[4][claims.HOLDS] >= 0.4 and rates[4][claims.FAILS] == 0, rates[4]
    assert rates[6][claims.HOLDS] == 1.0, rates[6]
    strong = verdict_rates(range(2000, 2020), bonus={"dste_nt5": 0.2, "dste_ns20": 0.2})
    assert strong[4][claims.HOLDS] >= 0.75, strong[4]
