"""The supplementary's seven claims as pure functions: each gives a three-valued verdict and its
evidence.

Curves are compared at equal GFLOPs, inside the range both cover (dkp.figures.curve_geometry).

Rules (figures params):
- "low GFLOPs" of a figure = the lowest `low_fraction` of the GFLOPs range its
  curves cover together: [g_min, g_min + low_fraction * (g_max - g_min)];
  "higher GFLOPs" = the rest.
- claim 3's threshold = c_min + similar_from * (c_max - c_min), where [c_min, c_max]
  is the range all S-1 curves share (the only place all four can be compared);
  the curves are "similar" above it when their spread (best minus worst mAP at
  equal GFLOPs) stays within `similar_margin` mAP points. The smallest GFLOPs
  from which the spread stays within the margin is measured and reported too.
- "A beats B" over a region = A's mean mAP advantage over B there is positive.

The three-valued rule each effect is judged by lives in dkp.figures.verdicts.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .. import stats
from .curve_geometry import Curve, diff, fraction_point, similar_from, spread
from .verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    UNTESTABLE,
    VERDICT_CODE,
    Draws,
    Effect,
    Layout,
    Verdict,
    combine,
    curves_from,
    decide,
    describe,
    fmt_effect,
)

S2_GROUPS = ("dste_nt5", "dste_ns20", "teacher")

CLAIMS = {
    1: (
        "At low GFLOPs, adaptive sampling drops more than fixed sampling (fixed gives the better "
        "mAP there)."
    ),
    2: "At low GFLOPs, ratio n_s/n_t = 8 beats ratio 4 (for adaptive and for fixed sampling).",
    3: (
        "Above a GFLOPs threshold (about 12 GFLOPs in the paper) the four S-1 curves perform "
        "similarly."
    ),
    4: "nt-5 and ns-20 both beat Teacher alone at low computation.",
    5: "ns-20 goes on to beat Teacher at higher GFLOPs too.",
    6: "In S-3, DSTE gives the ground-truth class a higher per-frame probability than Student.",
    7: (
        "To keep improving, n_t must grow: nt-5 saturates as n_s grows, while ns-20 keeps "
        "improving as n_t grows."
    ),
}


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


def _untestable(number: int, why: str) -> Verdict:
    return Verdict(number, CLAIMS[number], UNTESTABLE, why)


def _region_effects(d: Draws, pairs, lo=-np.inf, hi=np.inf) -> tuple[list[Effect], list[str]]:
    """One effect per (label, a, b): a - b's mean over [lo, hi]; labels of pairs that do not
    overlap."""
    effects, missing = [], []
    for label, a, b in pairs:
        r = diff(a, b, lo=lo, hi=hi)
        if r is None:
            missing.append(label)
            continue
        effects.append(decide(f"{label} ({r.lo:.3g}-{r.hi:.3g} GFLOPs)", r.mean, d.layout))
    return effects, missing


def _two_part(number: int, d: Draws, pairs, region: str, lo=-np.inf, hi=np.inf) -> Verdict:
    effects, missing = _region_effects(d, pairs, lo, hi)
    status = (
        combine(effects) if not missing else (FAILS if combine(effects) == FAILS else UNTESTABLE)
    )
    evidence = region + " " + describe(effects, d.n_videos) if effects else region
    if missing:
        evidence += f" No overlap for: {', '.join(missing)}."
    numbers = {e.label.split(" (")[0]: e.as_dict() for e in effects}
    return Verdict(number, CLAIMS[number], status, evidence, numbers, tuple(effects))


def claim_adaptive_vs_fixed(d: Draws, low_fraction: float) -> Verdict:
    """Claim 1: per ratio, fixed minus adaptive over the low-GFLOPs part of S-1."""
    groups, curves = _s1_curves(d)
    ratios = sorted(
        {r for (s, r) in groups if (("adaptive", r) in groups and ("fixed", r) in groups)}
    )
    if not ratios:
        return _untestable(1, "S-1 needs an adaptive and a fixed curve of the same ratio.")
    low = fraction_point(curves.values(), low_fraction)
    pairs = [
        (
            f"Fixed-{r:g} minus Adaptive-{r:g}",
            curves[groups[("fixed", r)]],
            curves[groups[("adaptive", r)]],
        )
        for r in ratios
    ]
    return _two_part(
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
        return _untestable(2, "S-1 needs curves of two different ratios.")
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
        return _untestable(2, "no strategy has curves of both ratios.")
    return _two_part(
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
        up = decide(f"{a.name} minus {b.name}", r.mean, layout, bound=margin)
        down = decide(f"{a.name} minus {b.name}", r.mean, layout, bound=-margin, side=-1)
        apart += [f for f in (up, down) if f.status == HOLDS]
    return apart, pair_level


def claim_similar_above(d: Draws, similar_from_fraction: float, margin: float) -> Verdict:
    """Claim 3 (equivalence): the largest spread of the S-1 curves above the threshold, against the
    margin: holds when its interval lies below the margin, fails when a pair is apart
    (_pairs_apart)."""
    _, curves = _s1_curves(d)
    if len(curves) < 2:
        return _untestable(3, "S-1 needs at least two curves.")
    cs = list(curves.values())
    c_min, c_max = max(c.lo for c in cs), min(c.hi for c in cs)
    if c_min > c_max:
        return _untestable(
            3,
            f"the {len(cs)} S-1 curves share no GFLOPs range "
            f"(one ends at {c_max:.3g}, another starts at {c_min:.3g}).",
        )
    threshold = c_min + similar_from_fraction * (c_max - c_min)
    measured = similar_from(cs, margin)
    x, sp = spread(cs, lo=threshold)
    e = decide(
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


def _s2(d: Draws):
    curves = curves_from(d, set(S2_GROUPS))
    return curves if all(g in curves for g in S2_GROUPS) else None


def claim_s2_low(d: Draws, low_fraction: float) -> Verdict:
    """Claim 4: nt-5 and ns-20 each minus Teacher over the low-GFLOPs part of S-2."""
    curves = _s2(d)
    if curves is None:
        return _untestable(4, f"S-2 needs the curves {', '.join(S2_GROUPS)}.")
    low = fraction_point(curves.values(), low_fraction)
    pairs = [
        (f"{label} minus Teacher", curves[g], curves["teacher"])
        for g, label in (("dste_nt5", "nt-5"), ("dste_ns20", "ns-20"))
    ]
    return _two_part(
        4,
        d,
        pairs,
        f"Low GFLOPs = below {low:.3g} (lowest {low_fraction:g} of the S-2 range).",
        hi=low,
    )


def claim_ns20_high(d: Draws, low_fraction: float) -> Verdict:
    """Claim 5: ns-20 minus Teacher above the low-GFLOPs part of S-2 (the mean decides; the top end
    is shown)."""
    curves = _s2(d)
    if curves is None:
        return _untestable(5, f"S-2 needs the curves {', '.join(S2_GROUPS)}.")
    low = fraction_point(curves.values(), low_fraction)
    a, b = curves["dste_ns20"], curves["teacher"]
    region = f"Higher GFLOPs = above {low:.3g} (the S-2 range above its lowest {low_fraction:g})."
    r = diff(a, b, lo=low)
    if r is None:
        return Verdict(
            5,
            CLAIMS[5],
            UNTESTABLE,
            region + " Not testable: ns-20 and Teacher do not overlap there.",
        )
    e = decide(f"ns-20 minus Teacher ({r.lo:.3g}-{r.hi:.3g} GFLOPs)", r.mean, d.layout)
    # at the top of the overlap too: "goes on to beat" is about the high end, not only the average
    top = decide(f"at {r.hi:.3g} GFLOPs", (a.at(r.hi) - b.at(r.hi))[:, 0], d.layout)
    evidence = (
        f"{region} {describe([e], d.n_videos)} Shown, not deciding: {top.label}: {fmt_effect(top)}."
    )
    return Verdict(
        5,
        CLAIMS[5],
        e.status,
        evidence,
        {"ns-20 minus Teacher": e.as_dict(), "at_top": top.as_dict()},
        (e,),
    )


def claim_keep_improving(d: Draws) -> Verdict:
    """Claim 7 (docs/method.md 11): on each S-2 curve's own points in GFLOPs order, the upper-half
    gain (second point to last): ns-20's > 0, and ns-20's minus nt-5's > 0."""
    t, rows = d.table, d.rows
    gains, spans = {}, {}
    for g, label in (("dste_nt5", "nt-5"), ("dste_ns20", "ns-20")):
        idx = np.flatnonzero((t["group"] == g).to_numpy())
        if idx.size < 3:
            return _untestable(7, f"S-2 needs at least three points of {label}.")
        idx = idx[np.argsort(t["gflops"].to_numpy(float)[idx], kind="stable")]
        gains[g] = rows[:, idx[-1]] - rows[:, idx[1]]
        spans[g] = f"{t['name'].iloc[idx[1]]} to {t['name'].iloc[idx[-1]]}" if "name" in t else ""
    effects = [
        decide(f"ns-20 upper-half gain ({spans['dste_ns20']})", gains["dste_ns20"], d.layout),
        decide(
            "ns-20 minus nt-5 upper-half gain",
            gains["dste_ns20"] - gains["dste_nt5"],
            d.layout,
        ),
    ]
    region = "Upper half of each S-2 curve = its second point to its last" + (
        f" (nt-5: {spans['dste_nt5']}; ns-20: {spans['dste_ns20']})." if spans["dste_nt5"] else "."
    )
    return Verdict(
        7,
        CLAIMS[7],
        combine(effects),
        f"{region} {describe(effects, d.n_videos)}",
        {e.label.split(" (")[0]: e.as_dict() for e in effects},
        tuple(effects),
    )


def s3_effect_rows(
    gains: np.ndarray, weights: np.ndarray | None, seed_mult: np.ndarray | None = None
) -> np.ndarray | None:
    """(1 + S + 2B,) mean per-video gain in the rows of verdicts.Layout: seed mean, each seed, each
    resample with the seed part (seed_mult, stats.seed_multipliers; none without it), each
    resample over videos alone; None if a seed has no gain."""
    g = np.atleast_2d(np.asarray(gains, float))
    ok = np.isfinite(g)
    if not ok.any(axis=1).all():
        return None
    per_seed = np.array([row[m].mean() for row, m in zip(g, ok)])
    w = np.zeros((0, g.shape[1])) if weights is None else np.atleast_2d(np.asarray(weights, float))
    boot = np.zeros((len(g), len(w)))
    for s, (row, m) in enumerate(zip(g, ok)):
        den = w[:, m].sum(axis=1)
        boot[s] = np.divide(w[:, m] @ row[m], den, out=np.full(len(w), np.nan), where=den > 0)
    video = boot.mean(axis=0)
    mult = np.zeros((len(w), len(g))) if seed_mult is None else np.asarray(seed_mult, float)
    return np.concatenate(
        [[per_seed.mean()], per_seed, stats.with_seed_part(video, per_seed, mult), video]
    )


def claim_s3(
    gains: np.ndarray,
    weights: np.ndarray | None,
    level: float = 0.95,
    seed_mult: np.ndarray | None = None,
) -> Verdict:
    """Claim 6: mean over videos of DSTE minus Student per-frame ground-truth probability (S, V
    gains)."""
    rows = s3_effect_rows(gains, weights, seed_mult)
    if rows is None:
        return _untestable(6, "a seed's S-3 file holds no video with frames.")
    g = np.atleast_2d(np.asarray(gains, float))
    n = int(np.isfinite(g).any(axis=0).sum())
    n_boot = 0 if weights is None else len(np.atleast_2d(weights))
    e = decide("DSTE minus Student", rows, Layout(g.shape[0], n_boot, level, n))
    better = ", ".join(
        f"{int((row[np.isfinite(row)] > 0).sum())}/{int(np.isfinite(row).sum())}" for row in g
    )
    evidence = (
        f"Mean over {n} videos of each video's mean per-frame probability difference: "
        f"{describe([e], n, unit='probability', digits=3)} DSTE higher in {better} videos (per "
        "seed)."
    )
    numbers = {"DSTE minus Student": e.as_dict(), "videos": n}
    return Verdict(6, CLAIMS[6], e.status, evidence, numbers, (e,), unit="probability")


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
