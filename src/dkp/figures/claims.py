"""The supplementary's six claims as pure functions: each gives a verdict and the numbers behind it.

Curves are compared at equal GFLOPs by piecewise-linear interpolation in GFLOPs,
and only inside the range both curves cover (no extrapolation). Between the
union of two curves' break points their difference is linear, so means, minima
and maxima computed on those break points are exact.

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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HOLDS, FAILS, PARTLY, UNTESTABLE = "holds", "fails", "partly holds", "not testable"

S2_GROUPS = ("dste_nt5", "dste_ns20", "teacher")

CLAIMS = {
    1: "At low GFLOPs, adaptive sampling drops more than fixed sampling (fixed gives the better mAP there).",
    2: "At low GFLOPs, ratio n_s/n_t = 8 beats ratio 4 (for adaptive and for fixed sampling).",
    3: "Above a GFLOPs threshold (about 12 GFLOPs in the paper) the four S-1 curves perform similarly.",
    4: "nt-5 and ns-20 both beat Teacher alone at low computation.",
    5: "ns-20 goes on to beat Teacher at higher GFLOPs too.",
    6: "In S-3, DSTE gives the ground-truth class a higher per-frame probability than Student.",
}


@dataclass(frozen=True)
class Curve:
    """One curve: GFLOPs ascending (duplicates averaged) and mAP in percent."""

    name: str
    g: np.ndarray
    m: np.ndarray

    @property
    def lo(self) -> float:
        return float(self.g[0])

    @property
    def hi(self) -> float:
        return float(self.g[-1])

    def at(self, x) -> np.ndarray:
        return np.interp(x, self.g, self.m)


@dataclass(frozen=True)
class Diff:
    """a - b in mAP points over [lo, hi] (inside both curves' ranges)."""

    lo: float
    hi: float
    mean: float
    min: float
    max: float


@dataclass(frozen=True)
class Verdict:
    number: int
    claim: str
    status: str       # holds | fails | partly holds | not testable
    evidence: str     # one paragraph: the rule applied and the numbers measured
    numbers: dict = field(default_factory=dict)


def make_curve(name: str, gflops, m_ap) -> Curve:
    """Sort by GFLOPs, average mAP over repeated GFLOPs, drop non-finite points."""
    g = np.asarray(gflops, dtype=float)
    m = np.asarray(m_ap, dtype=float)
    keep = np.isfinite(g) & np.isfinite(m)
    g, m = g[keep], m[keep]
    if g.size == 0:
        return Curve(name, g, m)
    ug, inv = np.unique(g, return_inverse=True)
    um = np.bincount(inv, weights=m) / np.bincount(inv)
    return Curve(name, ug, um)


def curves_from_table(rows, groups=None) -> dict[str, Curve]:
    """Curves keyed by group from a curves.csv DataFrame (columns group, gflops, mAP)."""
    out = {}
    for group, sub in rows.groupby("group", sort=True):
        if groups is None or group in groups:
            c = make_curve(group, sub["gflops"], sub["mAP"])
            if c.g.size:
                out[group] = c
    return out


def span(curves) -> tuple[float, float]:
    """GFLOPs range covered by the curves together."""
    return min(c.lo for c in curves), max(c.hi for c in curves)


def fraction_point(curves, fraction: float) -> float:
    lo, hi = span(curves)
    return lo + fraction * (hi - lo)


def diff(a: Curve, b: Curve, lo: float = -np.inf, hi: float = np.inf) -> Diff | None:
    """a - b over [lo, hi] intersected with both curves' ranges; None where that is empty."""
    lo, hi = max(lo, a.lo, b.lo), min(hi, a.hi, b.hi)
    if lo > hi:
        return None
    x = np.union1d(np.concatenate([a.g, b.g]), [lo, hi])
    x = x[(x >= lo) & (x <= hi)]
    d = a.at(x) - b.at(x)
    mean = float(d[0]) if x.size == 1 else float(np.trapezoid(d, x) / (hi - lo))
    return Diff(lo, hi, mean, float(d.min()), float(d.max()))


def spread(curves, lo: float = -np.inf, hi: float = np.inf):
    """(x, best-minus-worst mAP at x) on the break points of [lo, hi] ∩ the common range, or None.

    Between break points the spread is convex (max minus min of linear pieces), so
    its maximum over the range is the maximum over these points.
    """
    lo = max([lo] + [c.lo for c in curves])
    hi = min([hi] + [c.hi for c in curves])
    if lo > hi:
        return None
    x = np.union1d(np.concatenate([c.g for c in curves]), [lo, hi])
    x = x[(x >= lo) & (x <= hi)]
    ys = np.stack([c.at(x) for c in curves])
    return x, ys.max(axis=0) - ys.min(axis=0)


def similar_from(curves, margin: float) -> float | None:
    """Smallest GFLOPs from which the spread stays within margin up to the common range's end."""
    sp = spread(curves)
    if sp is None or sp[1][-1] > margin:
        return None
    x, s = sp
    over = np.nonzero(s > margin)[0]
    if over.size == 0:
        return float(x[0])
    k = int(over[-1])
    a, b = float(x[k]), float(x[k + 1])

    def s_at(t):
        ys = [float(c.at(t)) for c in curves]
        return max(ys) - min(ys)

    for _ in range(60):  # bisection: the sublevel set of a convex piece is an interval ending at b
        mid = 0.5 * (a + b)
        a, b = (mid, b) if s_at(mid) > margin else (a, mid)
    return b


def _fmt(d: Diff | None) -> str:
    if d is None:
        return "no overlap"
    return (f"{d.mean:+.2f} mAP points on average over {d.lo:.3g}-{d.hi:.3g} GFLOPs "
            f"(min {d.min:+.2f}, max {d.max:+.2f})")


def _combine(results: list[Diff | None]) -> str:
    """holds if every comparison is positive, fails if none is, partly otherwise."""
    tested = [r for r in results if r is not None]
    if not tested:
        return UNTESTABLE
    wins = sum(r.mean > 0 for r in tested)
    if wins == len(results):
        return HOLDS
    return FAILS if wins == 0 else PARTLY


def _s1_groups(rows) -> dict[tuple[str, float], str]:
    """(strategy, ratio) -> group for the S-1 curves."""
    s1 = rows[rows["figure"] == "s1"]
    return {(str(r.strategy), float(r.ratio)): str(r.group)
            for r in s1.drop_duplicates("group").itertuples()}


def _s1_curves(rows) -> tuple[dict, dict[str, Curve]]:
    groups = _s1_groups(rows)
    return groups, curves_from_table(rows, set(groups.values()))


def _untestable(number: int, why: str) -> Verdict:
    return Verdict(number, CLAIMS[number], UNTESTABLE, why)


def claim_adaptive_vs_fixed(rows, low_fraction: float) -> Verdict:
    """Claim 1: per ratio, fixed minus adaptive over the low-GFLOPs part of S-1."""
    groups, curves = _s1_curves(rows)
    ratios = sorted({r for (s, r) in groups if (("adaptive", r) in groups and ("fixed", r) in groups)})
    if not ratios:
        return _untestable(1, "S-1 needs an adaptive and a fixed curve of the same ratio.")
    low = fraction_point(curves.values(), low_fraction)
    results, parts, numbers = [], [], {"low_below": low}
    for r in ratios:
        a, f = curves[groups[("adaptive", r)]], curves[groups[("fixed", r)]]
        d = diff(f, a, hi=low)
        results.append(d)
        numbers[f"fixed_minus_adaptive_{r:g}"] = None if d is None else d.mean
        part = f"ratio {r:g}: Fixed minus Adaptive = {_fmt(d)}"
        if d is not None:  # each curve's drop below its own best, at the lowest GFLOPs both reach
            drop_a, drop_f = (float(c.m.max() - c.at(d.lo)) for c in (a, f))
            part += f"; drop below own best at {d.lo:.3g} GFLOPs: Adaptive {drop_a:.2f}, Fixed {drop_f:.2f} points"
        parts.append(part)
    evidence = (f"Low GFLOPs = below {low:.3g} (lowest {low_fraction:g} of the S-1 range). " + "; ".join(parts) + ".")
    return Verdict(1, CLAIMS[1], _combine(results), evidence, numbers)


def claim_ratio(rows, low_fraction: float) -> Verdict:
    """Claim 2: per strategy, largest ratio minus smallest ratio over the low-GFLOPs part of S-1."""
    groups, curves = _s1_curves(rows)
    ratios = sorted({r for (_, r) in groups})
    if len(ratios) < 2:
        return _untestable(2, "S-1 needs curves of two different ratios.")
    lo_r, hi_r = ratios[0], ratios[-1]
    low = fraction_point(curves.values(), low_fraction)
    results, parts, numbers = [], [], {"low_below": low}
    for strategy in ("adaptive", "fixed"):
        if (strategy, lo_r) not in groups or (strategy, hi_r) not in groups:
            continue
        d = diff(curves[groups[(strategy, hi_r)]], curves[groups[(strategy, lo_r)]], hi=low)
        results.append(d)
        numbers[f"{strategy}_{hi_r:g}_minus_{lo_r:g}"] = None if d is None else d.mean
        parts.append(f"{strategy.capitalize()}-{hi_r:g} minus {strategy.capitalize()}-{lo_r:g} = {_fmt(d)}")
    if not results:
        return _untestable(2, "no strategy has curves of both ratios.")
    evidence = f"Low GFLOPs = below {low:.3g} (lowest {low_fraction:g} of the S-1 range). " + "; ".join(parts) + "."
    return Verdict(2, CLAIMS[2], _combine(results), evidence, numbers)


def claim_similar_above(rows, similar_from_fraction: float, margin: float) -> Verdict:
    """Claim 3: spread of the S-1 curves above the rule's threshold, and the threshold measured."""
    _, curves = _s1_curves(rows)
    if len(curves) < 2:
        return _untestable(3, "S-1 needs at least two curves.")
    cs = list(curves.values())
    c_min, c_max = max(c.lo for c in cs), min(c.hi for c in cs)
    if c_min > c_max:
        return _untestable(3, f"the {len(cs)} S-1 curves share no GFLOPs range "
                              f"(one ends at {c_max:.3g}, another starts at {c_min:.3g}).")
    threshold = c_min + similar_from_fraction * (c_max - c_min)
    measured = similar_from(cs, margin)
    sp = spread(cs, lo=threshold)
    numbers = {"threshold": threshold, "margin": margin, "measured_threshold": measured}
    rule = (f"Threshold = {threshold:.3g} GFLOPs ({similar_from_fraction:g} of the way up the range all "
            f"{len(cs)} curves share, {c_min:.3g}-{c_max:.3g}); margin = {margin:g} mAP points.")
    found = (f" Measured: the spread stays within the margin from {measured:.3g} GFLOPs on." if measured is not None
             else " Measured: the spread does not stay within the margin up to the end of the shared range.")
    worst = float(sp[1].max())
    numbers["max_spread_above"] = worst
    status = HOLDS if worst <= margin else FAILS
    evidence = (f"{rule} Largest spread between the {len(cs)} curves over {sp[0][0]:.3g}-{sp[0][-1]:.3g} GFLOPs: "
                f"{worst:.2f} mAP points (at {float(sp[0][int(np.argmax(sp[1]))]):.3g} GFLOPs)." + found)
    return Verdict(3, CLAIMS[3], status, evidence, numbers)


def _s2(rows):
    curves = curves_from_table(rows, set(S2_GROUPS))
    return curves if all(g in curves for g in S2_GROUPS) else None


def claim_s2_low(rows, low_fraction: float) -> Verdict:
    """Claim 4: nt-5 and ns-20 each minus Teacher over the low-GFLOPs part of S-2."""
    curves = _s2(rows)
    if curves is None:
        return _untestable(4, f"S-2 needs the curves {', '.join(S2_GROUPS)}.")
    low = fraction_point(curves.values(), low_fraction)
    results, parts, numbers = [], [], {"low_below": low}
    for g, label in (("dste_nt5", "nt-5"), ("dste_ns20", "ns-20")):
        d = diff(curves[g], curves["teacher"], hi=low)
        results.append(d)
        numbers[f"{g}_minus_teacher"] = None if d is None else d.mean
        parts.append(f"{label} minus Teacher = {_fmt(d)}")
    evidence = f"Low GFLOPs = below {low:.3g} (lowest {low_fraction:g} of the S-2 range). " + "; ".join(parts) + "."
    return Verdict(4, CLAIMS[4], _combine(results), evidence, numbers)


def claim_ns20_high(rows, low_fraction: float) -> Verdict:
    """Claim 5: ns-20 minus Teacher above the low-GFLOPs part of S-2."""
    curves = _s2(rows)
    if curves is None:
        return _untestable(5, f"S-2 needs the curves {', '.join(S2_GROUPS)}.")
    low = fraction_point(curves.values(), low_fraction)
    d = diff(curves["dste_ns20"], curves["teacher"], lo=low)
    numbers = {"high_above": low, "dste_ns20_minus_teacher": None if d is None else d.mean}
    evidence = f"Higher GFLOPs = above {low:.3g} (the S-2 range above its lowest {low_fraction:g}). "
    if d is None:
        return Verdict(5, CLAIMS[5], UNTESTABLE, evidence + "Not testable: ns-20 and Teacher do not overlap there.",
                       numbers)
    # at the top of the overlap too: "goes on to beat" is about the high end, not only the average
    top = float(curves["dste_ns20"].at(d.hi) - curves["teacher"].at(d.hi))
    numbers["at_top"] = top
    evidence += f"ns-20 minus Teacher = {_fmt(d)}; at {d.hi:.3g} GFLOPs: {top:+.2f}."
    return Verdict(5, CLAIMS[5], HOLDS if d.mean > 0 else FAILS, evidence, numbers)


def video_gains(videos: list[dict]) -> dict[str, float]:
    """Per video: mean DSTE minus mean Student ground-truth probability over its frames."""
    out = {}
    for v in videos:
        s, d = np.asarray(v["student"], float), np.asarray(v["dste"], float)
        if s.size and d.size:
            out[str(v["id"])] = float(d.mean() - s.mean())
    return out


def claim_s3(videos: list[dict]) -> Verdict:
    """Claim 6: DSTE minus Student per-frame ground-truth probability, over every video of the S-3 file."""
    gains = video_gains(videos)
    if not gains:
        return _untestable(6, "the S-3 file holds no video with frames.")
    g = np.array([gains[k] for k in sorted(gains)])
    frames_s = np.concatenate([np.asarray(v["student"], float) for v in videos])
    frames_d = np.concatenate([np.asarray(v["dste"], float) for v in videos])
    numbers = {"videos": int(g.size), "mean_gain": float(g.mean()), "videos_better": int((g > 0).sum()),
               "frames": int(frames_s.size), "frames_better": int((frames_d > frames_s).sum()),
               "mean_student": float(frames_s.mean()), "mean_dste": float(frames_d.mean())}
    evidence = (f"Over {g.size} videos: DSTE minus Student mean per-frame probability = {g.mean():+.3f} on average "
                f"per video; DSTE higher in {numbers['videos_better']}/{g.size} videos and in "
                f"{numbers['frames_better']}/{frames_s.size} frames; frame means Student {frames_s.mean():.3f}, "
                f"DSTE {frames_d.mean():.3f}.")
    return Verdict(6, CLAIMS[6], HOLDS if g.mean() > 0 else FAILS, evidence, numbers)


def evaluate_all(rows, videos: list[dict], fp: dict) -> list[Verdict]:
    """All six verdicts, in the paper's order, under the rules in params['figures']."""
    low = fp["low_fraction"]
    return [claim_adaptive_vs_fixed(rows, low), claim_ratio(rows, low),
            claim_similar_above(rows, fp["similar_from"], fp["similar_margin"]),
            claim_s2_low(rows, low), claim_ns20_high(rows, low), claim_s3(videos)]
