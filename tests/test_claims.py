"""The six claim verdicts on constructed curves: each claim where it holds and where it fails."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dkp.figures import claims

FP = {"low_fraction": 0.33, "similar_from": 0.5, "similar_margin": 1.0}
G = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0])


def rows(*curves) -> pd.DataFrame:
    """curves: (group, figure, strategy, ratio, gflops, mAP) -> a curves.csv-like table."""
    out = []
    for group, figure, strategy, ratio, g, m in curves:
        out += [{"group": group, "figure": figure, "strategy": strategy, "ratio": ratio, "gflops": x, "mAP": y}
                for x, y in zip(g, m)]
    return pd.DataFrame(out)


def plateau(g, top, depth, scale=2.0):
    """A curve rising to `top`, `depth` points below it at zero GFLOPs."""
    return top - depth * np.exp(-np.asarray(g) / scale)


def s1(a4, a8, f4, f8, g_fixed=G - 1.0):
    return rows(("dste_adaptive-4", "s1", "adaptive", 4, G, a4), ("dste_adaptive-8", "s1", "adaptive", 8, G, a8),
                ("dste_fixed-4", "s1", "fixed", 4, g_fixed, f4), ("dste_fixed-8", "s1", "fixed", 8, g_fixed, f8))


# the paper's shape: adaptive drops at low GFLOPs, fixed less; ratio 8 a bit above 4; all meet above ~8
PAPER_S1 = s1(plateau(G, 80, 30), plateau(G, 80, 26), plateau(G - 1, 80, 12), plateau(G - 1, 80, 10))


def test_interpolation_is_piecewise_linear_and_limited_to_the_overlap():
    a = claims.make_curve("a", [0, 10], [0, 10])
    b = claims.make_curve("b", [5, 20, 5], [2, 2, 4])  # repeated GFLOPs are averaged: (5, 3)
    assert b.g.tolist() == [5, 20] and b.m.tolist() == [3, 2]
    d = claims.diff(a, b)
    assert (d.lo, d.hi) == (5, 10)  # no extrapolation beyond a's end at 10
    # a - b = x - (3 - (x-5)/15): 2 at x=5, 7 + 1/3 at x=10, linear: mean is the midpoint
    assert d.min == pytest.approx(2.0) and d.max == pytest.approx(7 + 1 / 3)
    assert d.mean == pytest.approx((2.0 + 7 + 1 / 3) / 2)
    assert claims.diff(a, claims.make_curve("c", [11, 12], [0, 1])) is None


def test_mean_difference_is_exact_across_a_crossing():
    a = claims.make_curve("a", [0, 1, 2], [0, 2, 0])
    b = claims.make_curve("b", [0, 2], [1, 1])
    assert claims.diff(a, b).mean == pytest.approx(0.0)  # triangle of area 2 over length 2, minus 1


def test_claim1_holds_and_fails():
    assert claims.claim_adaptive_vs_fixed(PAPER_S1, FP["low_fraction"]).status == claims.HOLDS
    swapped = s1(plateau(G, 80, 12), plateau(G, 80, 10), plateau(G - 1, 80, 30), plateau(G - 1, 80, 26))
    v = claims.claim_adaptive_vs_fixed(swapped, FP["low_fraction"])
    assert v.status == claims.FAILS and v.numbers["fixed_minus_adaptive_4"] < 0
    mixed = s1(plateau(G, 80, 30), plateau(G, 80, 10), plateau(G - 1, 80, 12), plateau(G - 1, 80, 30))
    assert claims.claim_adaptive_vs_fixed(mixed, FP["low_fraction"]).status == claims.PARTLY


def test_claim1_not_testable_when_curves_meet_only_at_high_gflops():
    far = s1(plateau(G, 80, 30), plateau(G, 80, 26), plateau(G + 30, 80, 12), plateau(G + 30, 80, 10), G + 30)
    v = claims.claim_adaptive_vs_fixed(far, FP["low_fraction"])
    assert v.status == claims.UNTESTABLE and "no overlap" in v.evidence


def test_claim2_holds_and_fails():
    v = claims.claim_ratio(PAPER_S1, FP["low_fraction"])
    assert v.status == claims.HOLDS and v.numbers["adaptive_8_minus_4"] > 0 and v.numbers["fixed_8_minus_4"] > 0
    four_better = s1(plateau(G, 80, 26), plateau(G, 80, 30), plateau(G - 1, 80, 10), plateau(G - 1, 80, 12))
    assert claims.claim_ratio(four_better, FP["low_fraction"]).status == claims.FAILS


def test_claim3_holds_and_fails():
    v = claims.claim_similar_above(PAPER_S1, FP["similar_from"], FP["similar_margin"])
    assert v.status == claims.HOLDS
    assert v.numbers["max_spread_above"] <= 1.0 and v.numbers["measured_threshold"] <= v.numbers["threshold"]
    apart = s1(plateau(G, 80, 30), plateau(G, 76, 26), plateau(G - 1, 80, 12), plateau(G - 1, 80, 10))
    v = claims.claim_similar_above(apart, FP["similar_from"], FP["similar_margin"])
    assert v.status == claims.FAILS and v.numbers["max_spread_above"] > 3.0
    assert v.numbers["measured_threshold"] is None


def test_claim3_measured_threshold_is_where_the_spread_enters_the_margin():
    # two lines: spread 4 - x/2 falls to the 1-point margin at x = 6 and stays below it
    lines = rows(("dste_adaptive-4", "s1", "adaptive", 4, [0, 10], [0, 10]),
                 ("dste_fixed-4", "s1", "fixed", 4, [0, 10], [4, 9]))
    v = claims.claim_similar_above(lines, 0.7, 1.0)
    assert v.numbers["measured_threshold"] == pytest.approx(6.0, abs=1e-9)
    assert v.numbers["threshold"] == pytest.approx(7.0) and v.status == claims.HOLDS
    assert claims.claim_similar_above(lines, 0.5, 1.0).status == claims.FAILS  # spread 1.5 at x = 5


def s2(nt5, ns20, teacher):
    g = np.array([3.0, 6.0, 9.0, 12.0, 15.0, 18.0])
    return rows(("dste_nt5", "s2", "adaptive", 1, g[:4] + 1, nt5), ("dste_ns20", "s2", "adaptive", 4, g[1:] + 1, ns20),
                ("teacher", "baseline", "adaptive", None, g, teacher))


TEACHER = np.array([60.0, 68, 72, 74, 75, 75.5])


def test_claim4_holds_and_fails():
    good = s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)
    assert claims.claim_s2_low(good, FP["low_fraction"]).status == claims.HOLDS
    bad = s2([55, 60, 62, 63], [58, 60, 64, 70, 76], TEACHER)
    v = claims.claim_s2_low(bad, FP["low_fraction"])
    assert v.status == claims.FAILS and v.numbers["dste_nt5_minus_teacher"] < 0
    one = s2([70, 73, 74, 74.5], [58, 60, 64, 70, 76], TEACHER)
    assert claims.claim_s2_low(one, FP["low_fraction"]).status == claims.PARTLY


def test_claim5_holds_and_fails():
    good = s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)
    v = claims.claim_ns20_high(good, FP["low_fraction"])
    assert v.status == claims.HOLDS and v.numbers["at_top"] > 0
    flat = s2([70, 73, 74, 74.5], [72, 73, 73.2, 73.3, 73.3], TEACHER)
    assert claims.claim_ns20_high(flat, FP["low_fraction"]).status == claims.FAILS


def test_s2_claims_not_testable_without_teacher():
    table = s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)
    table = table[table["group"] != "teacher"]
    assert claims.claim_s2_low(table, 0.33).status == claims.UNTESTABLE
    assert claims.claim_ns20_high(table, 0.33).status == claims.UNTESTABLE


def video(vid, student, dste):
    return {"id": vid, "times": list(range(len(student))), "student": student, "dste": dste}


def test_claim6_holds_and_fails():
    better = [video("a", [0.2, 0.3, 0.1], [0.6, 0.7, 0.5]), video("b", [0.5, 0.5], [0.4, 0.55])]
    v = claims.claim_s3(better)
    assert v.status == claims.HOLDS and v.numbers["videos_better"] == 1 and v.numbers["frames_better"] == 4
    assert v.numbers["mean_gain"] == pytest.approx((0.4 + (-0.025)) / 2)
    worse = [video("a", [0.6, 0.7], [0.2, 0.3]), video("b", [0.5], [0.55])]
    assert claims.claim_s3(worse).status == claims.FAILS
    assert claims.claim_s3([]).status == claims.UNTESTABLE


def test_evaluate_all_gives_six_verdicts_in_order():
    table = pd.concat([PAPER_S1, s2([70, 73, 74, 74.5], [72, 74.5, 76, 77, 77.5], TEACHER)])
    verdicts = claims.evaluate_all(table, [video("a", [0.2], [0.4])], FP)
    assert [v.number for v in verdicts] == [1, 2, 3, 4, 5, 6]
    assert all(v.status == claims.HOLDS for v in verdicts), [(v.number, v.evidence) for v in verdicts]
