"""Three-valued verdicts on effects computed over every draw of the mAP: the seed mean, each seed
and each bootstrap replicate.

Evidence: GFLOPs are fixed, so each effect is computed on every row of the mAP
draws (`Draws`): the seed mean, each seed, and each bootstrap replicate of the
seed-averaged mAP (the same video resamples for every configuration, so the
differences are paired). An effect **holds** when its interval lies entirely on
the claimed side and every seed's own effect is on that side too, **fails** in
the mirror case, and is **inconclusive** otherwise. A claim with two parts
("both", "for adaptive and for fixed") holds when every part holds and fails when
any part fails (each side of a 95 % interval errs at most 2.5 %, so two parts keep
"fails" within 5 %). Claim 3 is an equivalence: it holds when the upper end of the
spread's interval is below the margin (and every seed's spread is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import stats
from .curve_geometry import Curve, make_curve

HOLDS, FAILS, INCONCLUSIVE, UNTESTABLE = "holds", "fails", "inconclusive", "not testable"
VERDICT_CODE = {HOLDS: 1, FAILS: -1, INCONCLUSIVE: 0}


@dataclass(frozen=True)
class Draws:
    """mAP (percent) of every configuration: the seed mean, each seed, and bootstrap replicates.

    table: one row per configuration (group, figure, strategy, ratio, gflops), aligned with the
    columns of seeds (S, K) and boot (B, K); s3_gain (S, V) per-video S-3 gains and weights (B, V)
    the video resample counts, for claim 6.
    """

    table: pd.DataFrame
    seeds: np.ndarray
    boot: np.ndarray
    level: float = 0.95
    n_videos: int = 0
    s3_gain: np.ndarray | None = None
    weights: np.ndarray | None = None
    seed_ids: tuple = ()
    seed_weights: np.ndarray | None = (
        None  # (B, S) seed resample weights of each replicate (rows sum to 1)
    )

    @property
    def point(self) -> np.ndarray:
        return self.seeds.mean(axis=0)

    @property
    def rows(self) -> np.ndarray:
        """(1 + S + B, K): the row every effect is computed on."""
        return np.vstack([self.point[None], self.seeds, self.boot])

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
            np.asarray(arrays["seed_weights"], float),
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
    # validation videos for the interval to exclude the bound (inconclusive only)
    videos_needed: int | None

    def seeds_on_claimed_side(self) -> int:
        return int(sum((s - self.bound) * self.side > 0 for s in self.seeds))

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
            "videos_needed": self.videos_needed,
        }


@dataclass(frozen=True)
class Verdict:
    number: int
    claim: str
    status: str  # holds | fails | inconclusive | not testable
    evidence: str  # one paragraph: the rule applied and the numbers measured
    numbers: dict = field(default_factory=dict)
    effects: tuple = ()


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
    draws_seeds: int,
    level: float,
    n_videos: int,
    bound: float = 0.0,
    side: int = 1,
) -> Effect:
    """The three-valued rule on one effect computed per draw row (seed mean, S seeds, B
    replicates)."""
    values = np.asarray(values, float)
    point, seeds, boot = float(values[0]), values[1 : 1 + draws_seeds], values[1 + draws_seeds :]
    lo, hi = (float(v) for v in stats.interval(boot, level))
    above = lo > bound and bool(np.all(seeds > bound))
    below = hi < bound and bool(np.all(seeds < bound))
    status = (
        (HOLDS if above else FAILS if below else INCONCLUSIVE)
        if side > 0
        else (HOLDS if below else FAILS if above else INCONCLUSIVE)
    )
    needed = None
    if status == INCONCLUSIVE and not (lo > bound or hi < bound) and n_videos:
        # the side of the interval facing the bound
        half = point - lo if point > bound else hi - point
        needed = stats.videos_to_exclude(n_videos, abs(point - bound), half)
    return Effect(label, point, lo, hi, tuple(float(s) for s in seeds), bound, side, status, needed)


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


def settle(e: Effect, n_videos: int) -> str:
    """What would settle an inconclusive effect."""
    if e.status != INCONCLUSIVE:
        return ""
    if e.lo > e.bound or e.hi < e.bound:
        beyond = e.lo > e.bound
        if all((s > e.bound) if beyond else (s < e.bound) for s in e.seeds):
            # interval and seeds agree: the claim's own rule, stated in its evidence, left it open
            return ""
        return (
            f" The interval excludes {e.bound:g} but the seeds disagree: more seeds "
            "would settle it."
        )
    if e.videos_needed is None:
        return f" The effect sits at {e.bound:g}: no number of videos settles it at this size."
    return (
        f" At the measured effect, about {e.videos_needed} validation videos (now {n_videos}) "
        f"would make the interval exclude {e.bound:g} (width shrinks as 1/sqrt(videos))."
    )


def describe(effects: list[Effect], n_videos: int, unit: str = "mAP", digits: int = 2) -> str:
    return (
        "; ".join(
            f"{e.label} = {fmt_effect(e, unit, digits)} ({e.status}).{settle(e, n_videos)}".rstrip(
                "."
            )
            for e in effects
        )
        + "."
    )
