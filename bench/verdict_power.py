"""Power of the verdict rule at the effects a run measured, and the null rates over many
simulated runs.

    .venv/bin/python bench/verdict_power.py [--results results] [--params params.yaml]
    .venv/bin/python bench/verdict_power.py --null 1000          # null rates, simulated runs

Power at the measured effect: if the truth were the measured effect, how often would a rerun
(new validation videos of the same kind, new seeds) say "holds" (or "fails", for an effect
against the claim)? A rerun's estimate scatters like the replicates around the point (the
same replicates the interval is read off, videos and the t-scaled seed part together), and
its interval is as wide as this run's; a rerun commits when its interval clears the bound.
The share of replicates b with (replicate_b - point + effect) beyond the bound by the
interval's half-width on that side is that probability, the seeds' own agreement left out
(so an upper estimate). Needs results/curves.csv and results/bootstrap.npz (dkp evaluate).

--null N runs tests/fixtures/verdict_sim.py's null (identical curves, seed shifts
TAU_NULL) N times and prints each claim's holds and fails rates, with --tau to change the
seed shift and --videos the number of validation videos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from dkp.figures import claims, curves, verdicts  # noqa: E402


def effect_rows(draws: claims.Draws, fp: dict) -> dict[str, tuple[np.ndarray, verdicts.Effect]]:
    """Every effect the claims decide, with the rows it was decided on (decide, recorded)."""
    seen: dict[str, tuple[np.ndarray, verdicts.Effect]] = {}
    original = verdicts.decide

    def recording(label, values, layout, bound=0.0, side=1):
        e = original(label, values, layout, bound, side)
        if layout.n_videos:  # claim 3's per-pair checks use no video count: not reported
            # the full label: claims 4 and 5 both decide "ns-20 minus Teacher", over two ranges
            seen[label] = (np.asarray(values, float), e)
        return e

    verdicts.decide = recording  # every claim module calls it through dkp.figures.verdicts
    try:
        claims.evaluate_all(draws, fp)
    finally:
        verdicts.decide = original
    return seen


def power(values: np.ndarray, e: verdicts.Effect, n_seeds: int, n_boot: int) -> float:
    """P(a rerun's interval clears the bound on the estimate's side), truth = the estimate."""
    point, boot = values[0], values[1 + n_seeds : 1 + n_seeds + n_boot]
    toward = np.sign(point - e.bound) or 1.0
    half = (point - e.lo) if toward > 0 else (e.hi - point)
    rerun = boot - np.nanmean(boot) + point
    return float(np.mean(toward * (rerun - e.bound) > half))


def at_measured(results: Path, params: Path) -> list[dict]:
    p = yaml.safe_load(params.read_text())
    rows = curves.load(results / "curves.csv")
    draws = claims.Draws.from_arrays(rows, curves.load_bootstrap(results / "bootstrap.npz", rows))
    out = []
    for label, (values, e) in effect_rows(draws, p["figures"]).items():
        claimed = (e.point - e.bound) * e.side > 0
        out.append(
            {
                "effect": label,
                "estimate": round(e.point, 3),
                "interval": [round(e.lo, 3), round(e.hi, 3)],
                "status": e.status,
                "toward": "claim" if claimed else "against",
                "power": round(power(values, e, len(draws.seeds), len(draws.boot)), 3),
            }
        )
    return out


def null_rates(runs: int, tau: float | None, videos: int | None) -> dict:
    from fixtures import verdict_sim as sim

    if videos:
        sim.V = videos
    kw = {} if tau is None else {"tau": tau}
    return sim.verdict_rates(range(runs), **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--null", type=int, default=0, help="simulated null runs (0: power instead)")
    ap.add_argument("--tau", type=float, default=None)
    ap.add_argument("--videos", type=int, default=None)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.null:
        rates = null_rates(a.null, a.tau, a.videos)
        for n, r in sorted(rates.items()):
            print(json.dumps({"claim": n, **{k: round(v, 4) for k, v in r.items()}}))
        return
    rows = at_measured(Path(a.results), Path(a.params))
    if a.markdown:
        print(pd.DataFrame(rows).to_markdown(index=False))
    else:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
