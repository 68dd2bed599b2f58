"""The supplementary's seven claims, each a three-valued verdict with its evidence: claims 1-3
(Figure S-1: the sampling strategies and ratios) here, claims 4-7 (Figures S-2 and S-3) in
dkp.figures.claims_s2, their shared rules in dkp.figures.claim_rules; evaluate_all gives all
seven in the paper's order.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import verdicts
from .claim_rules import CLAIMS, two_part, untestable
from .claims_s2 import claim_keep_improving, claim_ns20_high, claim_s2_low, claim_s3
from .curve_geometry import Curve, diff, fraction_point, similar_from, spread
from .verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    UNTESTABLE,
    VERDICT_CODE,
    Draws,
    Verdict,
    curves_from,
    decide,
    describe,
    fmt_effect,
)

# the verdict names and the claims' evaluators, under one name for callers
__all__ = [
    "CLAIMS",
    "FAILS",
    "HOLDS",
    "INCONCLUSIVE",
    "UNTESTABLE",
    "Draws",
    "claim_adaptive_vs_fixed",
    "claim_keep_improving",
    "claim_ns20_high",
    "claim_ratio",
    "claim_s2_low",
    "claim_s3",
    "claim_similar_above",
    "claims_json",
    "decide",
    "evaluate_all",
    "fmt_effect",
]


def _s1_groups(t: pd.DataFrame) -> dict[tuple[str, float], str]:
    """(strategy, ratio) -> group for the S-1 curves."""
    s1 = t[t["figure"] == "s1"]
    return {
        (str(r.strategy), float(r.ratio)): str(r.group)
        for r in s1.drop_duplicates("group").itertuples()
    }


def _s1_curves(d: Draws) -> tuple[dict, dict[str, Curve]]:
    groups = _s1_groups(d.table)
    return groups, curves_from(d, set(groups.values()))


def claim_adaptive_vs_fixed(d: Draws, low_fraction: float) -> Verdict:
    """Claim 1: per ratio, fixed minus adaptive over the low-GFLOPs part of S-1."""
    groups, curves = _s1_curves(d)
    ratios = sorted(
        {r for (s, r) in groups if (("adaptive", r) in groups and ("fixed", r) in groups)}
    )
    if not ratios:
        return untestable(1, "S-1 needs an adaptive and a fixed curve of the same ratio.")
    low = fraction_point(curves.values(), low_fraction)
    pairs = [
        (
            f"Fixed-{r:g} minus Adaptive-{r:g}",
            curves[groups[("fixed", r)]],
            curves[groups[("adaptive", r)]],
        )
        for r in ratios
    ]
    return two_part(
        1,
        d,
        pairs,
        f"Low GFLOPs = below {low:.3g} (lowest {low_fraction:g} of the S-1 range).",
        hi=low,
    )


def claim_ratio(d: Draws, low_fraction: float) -> Verdict:
    """Claim 2: per strategy, largest ratio minus smallest ratio over the low-GFLOPs part of S-1."""
    groups, curves = _s1_curves(d)
    ratios = sorted({r for (_, r) in groups})
    if len(ratios) < 2:
        return untestable(2, "S-1 needs curves of two different ratios.")
    lo_r, hi_r = ratios[0], ratios[-1]
    low = fraction_point(curves.values(), low_fraction)
    pairs = [
        (
            f"{s.capitalize()}-{hi_r:g} minus {s.capitalize()}-{lo_r:g}",
            curves[groups[(s, hi_r)]],
            curves[groups[(s, lo_r)]],
        )
        for s in ("adaptive", "fixed")
        if (s, lo_r) in groups and (s, hi_r) in groups
    ]
    if not pairs:
        return untestable(2, "no strategy has curves of both ratios.")
    return two_part(
        2,
        d,
        pairs,
        f"Low GFLOPs = below {low:.3g} (lowest {low_fraction:g} of the S-1 range).",
        hi=low,
    )


def _pairs_apart(d: Draws, cs: list[Curve], threshold: float, margin: float):
    """(pairs of S-1 curves whose mean difference above the threshold lies beyond the margin, in
    every seed, at the level split over the pairs; that level). A max over noisy points is
    biased upward, so the spread's interval cannot show "not similar"; a pair apart by more than
    the margin on average can, whatever the noise (Bonferroni over the pairs)."""
    pairs = [(a, b) for i, a in enumerate(cs) for b in cs[i + 1 :]]
    pair_level = 1.0 - (1.0 - d.level) / len(pairs)
    layout = d.layout._replace(level=pair_level, n_videos=0)
    apart = []
    for a, b in pairs:
        r = diff(a, b, lo=threshold)
        up = verdicts.decide(f"{a.name} minus {b.name}", r.mean, layout, bound=margin)
        down = verdicts.decide(f"{a.name} minus {b.name}", r.mean, layout, bound=-margin, side=-1)
        apart += [f for f in (up, down) if f.status == HOLDS]
    return apart, pair_level


def claim_similar_above(d: Draws, similar_from_fraction: float, margin: float) -> Verdict:
    """Claim 3 (equivalence): the largest spread of the S-1 curves above the threshold, against the
    margin: holds when its interval lies below the margin, fails when a pair is apart
    (_pairs_apart)."""
    _, curves = _s1_curves(d)
    if len(curves) < 2:
        return untestable(3, "S-1 needs at least two curves.")
    cs = list(curves.values())
    c_min, c_max = max(c.lo for c in cs), min(c.hi for c in cs)
    if c_min > c_max:
        return untestable(
            3,
            f"the {len(cs)} S-1 curves share no GFLOPs range "
            f"(one ends at {c_max:.3g}, another starts at {c_min:.3g}).",
        )
    threshold = c_min + similar_from_fraction * (c_max - c_min)
    measured = similar_from(cs, margin)
    x, sp = spread(cs, lo=threshold)
    e = verdicts.decide(
        f"largest spread over {x[0]:.3g}-{x[-1]:.3g} GFLOPs",
        sp.max(axis=1),
        d.layout,
        bound=margin,
        side=-1,
    )
    apart, pair_level = _pairs_apart(d, cs, threshold, margin)
    status = HOLDS if e.status == HOLDS else FAILS if apart else INCONCLUSIVE
    e = (
        replace(e, status=status)
        if status == INCONCLUSIVE
        else replace(e, status=status, videos_needed=None, seeds_needed=None)
    )
    rule = (
        f"Threshold = {threshold:.3g} GFLOPs ({similar_from_fraction:g} of the way up the range "
        f"all {len(cs)} curves share, {c_min:.3g}-{c_max:.3g}); equivalence margin = {margin:g} "
        "mAP points: holds only if the whole interval of the largest spread is below it; fails "
        "only if some pair of curves differs on average over the region by more than the margin "
        f"({100 * pair_level:.2f} % interval, every seed)."
    )
    shown = "".join(f" {f.label}: {fmt_effect(f)}." for f in apart)
    if status == INCONCLUSIVE and e.lo > margin:
        shown += (
            " The spread's interval lies above the margin, but a maximum over noisy curves is "
            "biased upward, so it cannot show a difference by itself; no pair of curves is apart "
            f"by more than the margin at the {100 * pair_level:.2f} % level in every seed, which "
            '"fails" needs.'
        )
    found = (
        f" The seed-mean spread stays within the margin from {measured:.3g} GFLOPs on."
        if measured is not None
        else " The seed-mean spread does not stay within the margin up to the end of the shared "
        "range."
    )
    numbers = {"threshold": threshold, "margin": margin, "measured_threshold": measured}
    numbers["max_spread_above"] = e.as_dict()
    evidence = f"{rule} {describe([e], d.n_videos)}{shown}{found}"
    return Verdict(3, CLAIMS[3], e.status, evidence, numbers, (e,))


def evaluate_all(draws: Draws, fp: dict) -> list[Verdict]:
    """All seven verdicts, in the paper's order, under the rules in params['figures']."""
    low = fp["low_fraction"]
    gains = draws.s3_gain if draws.s3_gain is not None else np.full((1, 0), np.nan)
    return [
        claim_adaptive_vs_fixed(draws, low),
        claim_ratio(draws, low),
        claim_similar_above(draws, fp["similar_from"], fp["similar_margin"]),
        claim_s2_low(draws, low),
        claim_ns20_high(draws, low),
        claim_s3(gains, draws.weights, draws.level, draws.seed_mult),
        claim_keep_improving(draws),
    ]


def claims_json(verdicts: list[Verdict]) -> dict:
    """results/claims.json (DVC metrics): per claim the verdict (1 holds, 0 inconclusive, -1 fails)
    and effects."""
    return {
        str(v.number): {
            "status": v.status,
            "verdict": VERDICT_CODE.get(v.status),
            "effects": {e.label.split(" (")[0]: e.as_dict() for e in v.effects},
        }
        for v in verdicts
    }
