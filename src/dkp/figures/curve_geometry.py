"""Curves of mAP against GFLOPs, compared at equal GFLOPs: pure geometry for dkp.figures.claims.

Curves are compared by piecewise-linear interpolation in GFLOPs, and only inside the
range both curves cover (no extrapolation). Between the union of two curves' break
points their difference is linear, so means, minima and maxima computed on those break
points are exact. Every function works on all draws (rows of a curve's mAP) at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curve:
    """One curve: GFLOPs ascending (duplicates averaged) and mAP (R draws x points)."""

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
        """(R, len(x)) linear interpolation at x (inside the curve's range)."""
        x = np.atleast_1d(np.asarray(x, float))
        if self.g.size == 1:
            return np.repeat(self.m[:, :1], x.size, axis=1)
        i = np.clip(np.searchsorted(self.g, x, side="right") - 1, 0, self.g.size - 2)
        t = np.clip((x - self.g[i]) / (self.g[i + 1] - self.g[i]), 0.0, 1.0)
        return self.m[:, i] * (1 - t) + self.m[:, i + 1] * t


@dataclass(frozen=True)
class Diff:
    """a - b in mAP points over [lo, hi] (inside both curves' ranges); (R,) per draw."""

    lo: float
    hi: float
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray


def make_curve(name: str, gflops, m_ap) -> Curve:
    """Sort by GFLOPs, average mAP over repeated GFLOPs, drop non-finite points. m_ap: (n,) or
    (R, n)."""
    g = np.asarray(gflops, dtype=float)
    m = np.atleast_2d(np.asarray(m_ap, dtype=float))
    keep = np.isfinite(g) & np.isfinite(m).all(axis=0)
    g, m = g[keep], m[:, keep]
    if g.size == 0:
        return Curve(name, g, m)
    ug, inv = np.unique(g, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    onehot = np.zeros((g.size, ug.size))
    onehot[np.arange(g.size), inv] = 1.0
    return Curve(name, ug, (m @ onehot) / onehot.sum(axis=0))


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
    mean = d[:, 0] if x.size == 1 else np.trapezoid(d, x, axis=1) / (hi - lo)
    return Diff(lo, hi, mean, d.min(axis=1), d.max(axis=1))


def spread(curves, lo: float = -np.inf, hi: float = np.inf):
    """(x, best-minus-worst mAP at x, (R, len(x))) on the break points of [lo, hi] ∩ the common
    range, or None.

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
    """Smallest GFLOPs from which the seed-mean spread stays within margin up to the common range's
    end."""
    curves = [Curve(c.name, c.g, c.m[:1]) for c in curves]
    sp = spread(curves)
    if sp is None or sp[1][0, -1] > margin:
        return None
    x, s = sp[0], sp[1][0]
    over = np.nonzero(s > margin)[0]
    if over.size == 0:
        return float(x[0])
    k = int(over[-1])
    a, b = float(x[k]), float(x[k + 1])

    def s_at(t):
        ys = [float(c.at(t)[0, 0]) for c in curves]
        return max(ys) - min(ys)

    for _ in range(60):  # bisection: the sublevel set of a convex piece is an interval ending at b
        mid = 0.5 * (a + b)
        a, b = (mid, b) if s_at(mid) > margin else (a, mid)
    return b
