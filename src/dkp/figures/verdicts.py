"""Three-valued verdicts (holds / fails / inconclusive) on effects computed over every draw of the
mAP: the seed mean, each seed, each replicate over videos and seeds, and each replicate over
videos alone (for what would settle an inconclusive effect).

GFLOPs are fixed, so every effect is computed on every row of the draws (`Draws.rows`), and
the video resamples are shared by every configuration (paired differences). The rule itself
is written once, in docs/method.md section 11; `decide` implements it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import stats
from .curve_geometry import Curve, make_curve

HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE = "holds", "fails", "inconclusive", "not testable"
VERDICT_CODE = {HOLDS: 1, FAILS: -1, INCONCLUSIVE: 0}


class Layout(NamedTuple):
    """How the rows an effect is computed on split: the seed mean, n_seeds seeds, n_boot replicates
    with the seed part, then (when present) n_boot replicates over videos alone."""

    n_seeds: int
    n_boot: int
    level: float
    n_videos: int


@dataclass(frozen=True)
class Draws:
    """mAP (percent) of every configuration: the seed mean, each seed, and bootstrap replicates.

    table: one row per configuration (group, figure, strategy, ratio, gflops), aligned with the
    columns of seeds (S, K), boot (B, K; over videos and seeds) and video_boot (B, K; over videos
    alone, the seed mean; None = boot); s3_gain (S, V) per-video S-3 gains, weights (B, V) the
    video resample counts and seed_mult (B, S) the seed multipliers (stats.seed_multipliers), for
    claim 6.
    """

    table: pd.DataFrame
    seeds: np.ndarray
    boot: np.ndarray
    level: float = 0.95
    n_videos: int = 0
    s3_gain: np.ndarray | None = None
    weights: np.ndarray | None = None
    seed_ids: tuple = ()
    seed_mult: np.ndarray | None = None
    video_boot: np.ndarray | None = None

    @property
    def point(self) -> np.ndarray:
        return self.seeds.mean(axis=0)

    @property
    def layout(self) -> Layout:
        return Layout(len(self.seeds), len(self.boot), self.level, self.n_videos)

    @property
    def rows(self) -> np.ndarray:
        """(1 + S + 2B, K): the rows every effect is computed on (see Layout)."""
        video = self.boot if self.video_boot is None else self.video_boot
        return np.vstack([self.point[None], self.seeds, self.boot, video])

    @classmethod
    def exact(cls, table: pd.DataFrame, level: float = 0.95) -> Draws:
        """A table's mAP taken as known exactly: one seed, a zero-width interval (for rules, not
        data)."""
        m = table["mAP"].to_numpy(float)[None]
        return cls(table.reset_index(drop=True), m, m.copy(), level)

    @classmethod
    def from_arrays(cls, table: pd.DataFrame, arrays) -> Draws:
        """curves.csv and results/bootstrap.npz (dkp evaluate), columns matched by configuration
        name."""
        names = [str(n) for n in arrays["names"]]
        table = table.set_index("name").loc[names].reset_index()
        return cls(
            table,
            np.asarray(arrays["map_seeds"], float),
            np.asarray(arrays["map_replicates"], float),
            float(arrays["level"]),
            int(len(arrays["video_ids"])),
            np.asarray(arrays["s3_gain"], float),
            np.asarray(arrays["weights"]),
            tuple(int(s) for s in arrays["seeds"]),
            np.asarray(arrays["seed_multipliers"], float),
            np.asarray(arrays["map_video_replicates"], float),
        )


@dataclass(frozen=True)
class Effect:
    """One tested quantity with its evidence. Claimed: value > bound (side +1) or < bound
    (side -1)."""

    label: str
    point: float
    lo: float
    hi: float
    seeds: tuple
    bound: float
    side: int
    status: str
    # inconclusive only: validation videos at this seed count, and seeds at this video count, for
    # the interval to exclude the bound at the measured effect (None: no such number)
    videos_needed: int | None = None
    seeds_needed: int | None = None
    seed_half: float = 0.0  # the seed part's half-width (t quantile x sd / sqrt(S))

    def seeds_on_claimed_side(self) -> int:
        return int(sum((s - self.bound) * self.side > 0 for s in self.seeds))

    def seeds_against(self) -> int:
        return int(sum((s - self.bound) * self.side < 0 for s in self.seeds))

    def as_dict(self) -> dict:
        return {
            "effect": _round(self.point),
            "lo": _round(self.lo),
            "hi": _round(self.hi),
            "seeds": [_round(s) for s in self.seeds],
            "bound": self.bound,
            "claimed": ">" if self.side > 0 else "<",
            "verdict": VERDICT_CODE.get(self.status, 0),
            "status": self.status,
            "direction": direction(self),
            "seed_half_width": _round(self.seed_half),
            "videos_needed": self.videos_needed,
            "seeds_needed": self.seeds_needed,
        }


@dataclass(frozen=True)
class Verdict:
    number: int
    claim: str
    status: str  # holds | fails | inconclusive | not testable
    evidence: str  # one paragraph: the rule applied and the numbers measured
    numbers: dict = field(default_factory=dict)
    effects: tuple = ()
    unit: str = "mAP"  # of the effects: "mAP" (points) or "probability"


def _round(x, digits: int = 4):
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def curves_from(draws: Draws, groups=None) -> dict[str, Curve]:
    """Curves keyed by group, every draw at once."""
    out = {}
    t, rows = draws.table, draws.rows
    for group in sorted(set(t["group"])):
        if groups is None or group in groups:
            idx = np.flatnonzero((t["group"] == group).to_numpy())
            c = make_curve(group, t["gflops"].to_numpy(float)[idx], rows[:, idx])
            if c.g.size:
                out[group] = c
    return out


def decide(
    label: str,
    values: np.ndarray,
    layout: Layout,
    bound: float = 0.0,
    side: int = 1,
) -> Effect:
    """The three-valued rule on one effect computed per draw row (Layout)."""
    values = np.asarray(values, float)
    s, b = layout.n_seeds, layout.n_boot
    point, seeds, boot = float(values[0]), values[1 : 1 + s], values[1 + s : 1 + s + b]
    video = values[1 + s + b : 1 + s + 2 * b] if len(values) >= 1 + s + 2 * b else boot
    lo, hi = (float(v) for v in stats.interval(boot, layout.level))
    above = lo > bound and bool(np.all(seeds > bound))
    below = hi < bound and bool(np.all(seeds < bound))
    status = (
        (HOLDS if above else FAILS if below else INCONCLUSIVE)
        if side > 0
        else (HOLDS if below else FAILS if above else INCONCLUSIVE)
    )
    seed_half = stats.seed_half_width(seeds, layout.level)
    videos = more_seeds = None
    if status == INCONCLUSIVE and not (lo > bound or hi < bound) and layout.n_videos:
        # the video part of the side of the interval facing the bound; the seed part stays
        v_lo, v_hi = (float(v) for v in stats.interval(video, layout.level))
        video_half = point - v_lo if point > bound else v_hi - point
        # the projections scale the interval's own half-width on the bound's side, which the
        # percentile replicates make wider or narrower than sqrt(video^2 + seed^2): at today's
        # counts they then say what the interval says (never "enough" while it holds the bound)
        own = point - lo if point > bound else hi - point
        model = math.hypot(video_half, seed_half)
        distance = abs(point - bound) * (model / own if own > 0 and model > 0 else 1.0)
        videos = stats.videos_to_exclude(layout.n_videos, distance, video_half, seed_half)
        if len(seeds) > 1:
            sd = float(np.std(seeds, ddof=1))
            more_seeds = stats.seeds_to_exclude(len(seeds), distance, video_half, sd, layout.level)
    return Effect(
        label,
        point,
        lo,
        hi,
        tuple(float(x) for x in seeds),
        bound,
        side,
        status,
        videos,
        more_seeds,
        seed_half,
    )


def combine(effects: list[Effect]) -> str:
    """Every part must hold for the claim to hold; one part that fails makes it fail."""
    if not effects:
        return UNTESTABLE
    if any(e.status == FAILS for e in effects):
        return FAILS
    return HOLDS if all(e.status == HOLDS for e in effects) else INCONCLUSIVE


def fmt_effect(e: Effect, unit: str = "mAP", digits: int = 2) -> str:
    """'+4.40 mAP [1.90, 6.80], 3 of 3 seeds > 0'."""
    rel = ">" if e.side > 0 else "<"
    return (
        f"{e.point:+.{digits}f} {unit} [{e.lo:+.{digits}f}, {e.hi:+.{digits}f}], "
        f"{e.seeds_on_claimed_side()} of {len(e.seeds)} seeds {rel} {e.bound:g}"
    )


def direction(e: Effect) -> str:
    """Which way an inconclusive effect points: the estimate and the seeds, against the claim."""
    if e.status != INCONCLUSIVE or not np.isfinite(e.point):
        return ""
    toward = (e.point - e.bound) * e.side > 0
    agreeing = e.seeds_on_claimed_side() if toward else e.seeds_against()
    way = "with the claim" if toward else "opposite to the claim"
    excluded = e.lo > e.bound or e.hi < e.bound
    why = (
        "the interval excludes the bound, not every seed agrees" if excluded else "not significant"
    )
    return f"{way} in the estimate and in {agreeing} of {len(e.seeds)} seeds, {why}"


def settle(e: Effect, n_videos: int) -> str:
    """What would settle an inconclusive effect: videos at this seed count, or seeds."""
    if e.status != INCONCLUSIVE:
        return ""
    n_seeds = len(e.seeds)
    if e.lo > e.bound or e.hi < e.bound:
        beyond = e.lo > e.bound
        if all((s > e.bound) if beyond else (s < e.bound) for s in e.seeds):
            # interval and seeds agree: the claim's own rule, stated in its evidence, left it open
            return ""
        return f" More seeds than {n_seeds} would settle it."
    if e.point == e.bound:
        return f" The effect sits at {e.bound:g}: no number of videos or seeds settles it."
    seeds_text = (
        f"about {e.seeds_needed} seeds at {n_videos} videos would"
        if e.seeds_needed
        else f"nor would more seeds at {n_videos} videos alone"
    )
    if e.videos_needed is not None:
        return (
            f" About {e.videos_needed} validation videos (now {n_videos}) at {n_seeds} seeds would "
            f"make the interval exclude {e.bound:g} at the measured effect (the video part of the "
            f"width shrinks as 1/sqrt(videos), the seed part, +-{e.seed_half:.2f}, stays); "
            f"{seeds_text}."
        )
    return (
        f" No number of validation videos settles it at {n_seeds} seeds: the seed part alone "
        f"(+-{e.seed_half:.2f}) is as wide as the distance to {e.bound:g}; {seeds_text}."
    )


def describe(effects: list[Effect], n_videos: int, unit: str = "mAP", digits: int = 2) -> str:
    parts = []
    for e in effects:
        way = direction(e)
        status = f"{e.status}: {way}" if way else e.status
        parts.append(f"{e.label} = {fmt_effect(e, unit, digits)} ({status}).{settle(e, n_videos)}")
    return " ".join(parts)
