"""What the seven claim evaluators share: the claims' text, their regions and two-part effects.

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

import numpy as np

from . import verdicts
from .curve_geometry import diff
from .verdicts import FAILS, UNTESTABLE, Draws, Effect, Verdict, combine, describe

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


def untestable(number: int, why: str) -> Verdict:
    return Verdict(number, CLAIMS[number], UNTESTABLE, why)


def region_effects(d: Draws, pairs, lo=-np.inf, hi=np.inf) -> tuple[list[Effect], list[str]]:
    """One effect per (label, a, b): a - b's mean over [lo, hi]; labels of pairs that do not
    overlap."""
    effects, missing = [], []
    for label, a, b in pairs:
        r = diff(a, b, lo=lo, hi=hi)
        if r is None:
            missing.append(label)
            continue
        effects.append(verdicts.decide(f"{label} ({r.lo:.3g}-{r.hi:.3g} GFLOPs)", r.mean, d.layout))
    return effects, missing


def two_part(number: int, d: Draws, pairs, region: str, lo=-np.inf, hi=np.inf) -> Verdict:
    effects, missing = region_effects(d, pairs, lo, hi)
    status = (
        combine(effects) if not missing else (FAILS if combine(effects) == FAILS else UNTESTABLE)
    )
    evidence = region + " " + describe(effects, d.n_videos) if effects else region
    if missing:
        evidence += f" No overlap for: {', '.join(missing)}."
    numbers = {e.label.split(" (")[0]: e.as_dict() for e in effects}
    return Verdict(number, CLAIMS[number], status, evidence, numbers, tuple(effects))
