"""Claims 4, 5 and 7 (Figure S-2: nt-5, ns-20 and Teacher) and claim 6 (Figure S-3: DSTE against
Student per frame) as pure functions, under the rules of dkp.figures.claim_rules."""

from __future__ import annotations

import numpy as np

from .. import stats
from . import verdicts
from .claim_rules import CLAIMS, two_part, untestable
from .curve_geometry import diff, fraction_point
from .verdicts import (
    UNTESTABLE,
    Draws,
    Layout,
    Verdict,
    combine,
    curves_from,
    describe,
    fmt_effect,
)

S2_GROUPS = ("dste_nt5", "dste_ns20", "teacher")


def _s2(d: Draws):
    curves = curves_from(d, set(S2_GROUPS))
    return curves if all(g in curves for g in S2_GROUPS) else None


def claim_s2_low(d: Draws, low_fraction: float) -> Verdict:
    """Claim 4: nt-5 and ns-20 each minus Teacher over the low-GFLOPs part of S-2."""
    curves = _s2(d)
    if curves is None:
        return untestable(4, f"S-2 needs the curves {', '.join(S2_GROUPS)}.")
    low = fraction_point(curves.values(), low_fraction)
    pairs = [
        (f"{label} minus Teacher", curves[g], curves["teacher"])
        for g, label in (("dste_nt5", "nt-5"), ("dste_ns20", "ns-20"))
    ]
    return two_part(
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
        return untestable(5, f"S-2 needs the curves {', '.join(S2_GROUPS)}.")
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
    e = verdicts.decide(f"ns-20 minus Teacher ({r.lo:.3g}-{r.hi:.3g} GFLOPs)", r.mean, d.layout)
    # at the top of the overlap too: "goes on to beat" is about the high end, not only the average
    top = verdicts.decide(f"at {r.hi:.3g} GFLOPs", (a.at(r.hi) - b.at(r.hi))[:, 0], d.layout)
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
            return untestable(7, f"S-2 needs at least three points of {label}.")
        idx = idx[np.argsort(t["gflops"].to_numpy(float)[idx], kind="stable")]
        gains[g] = rows[:, idx[-1]] - rows[:, idx[1]]
        spans[g] = f"{t['name'].iloc[idx[1]]} to {t['name'].iloc[idx[-1]]}" if "name" in t else ""
    effects = [
        verdicts.decide(
            f"ns-20 upper-half gain ({spans['dste_ns20']})", gains["dste_ns20"], d.layout
        ),
        verdicts.decide(
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
        return untestable(6, "a seed's S-3 file holds no video with frames.")
    g = np.atleast_2d(np.asarray(gains, float))
    n = int(np.isfinite(g).any(axis=0).sum())
    n_boot = 0 if weights is None else len(np.atleast_2d(weights))
    e = verdicts.decide("DSTE minus Student", rows, Layout(g.shape[0], n_boot, level, n))
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
