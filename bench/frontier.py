"""The frontier of the default run: the widest claim-effect interval against minutes, for seeds x
validation videos (x a training schedule, through its measured seconds).

    .venv/bin/python bench/frontier.py --times stage_times.json [--results results]

Half-widths: for every mAP effect the claims decide (bench/verdict_power.effect_rows), the
video part at this run's V videos (the replicates over videos alone, the side facing zero)
shrinks as sqrt(V / V'), and the seed part is t_{S'-1} x sd / sqrt(S') with sd the seeds'
standard deviation of the effect measured here; the two combine as sqrt(video^2 + seed^2).
Minutes: stage_times.json holds the measured seconds of this run (keys: install, data,
per_video_data, per_seed_train, per_seed_video (features + sweep per validation video),
evaluate), each stage timed alone on a quiet machine (bench/README.md gives the numbers and
the machine). Printed as a Markdown table, one row per (seeds, videos, schedule).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from verdict_power import effect_rows  # noqa: E402

from dkp import stats  # noqa: E402
from dkp.figures import claims, curves  # noqa: E402


def parts(results: Path, params: Path) -> tuple[int, int, list[tuple[str, float, float]]]:
    """(videos, seeds, [(effect, video half-width, seed sd)]) of the mAP effects of a run."""
    p = yaml.safe_load(params.read_text())
    rows = curves.load(results / "curves.csv")
    d = claims.Draws.from_arrays(rows, curves.load_bootstrap(results / "bootstrap.npz", rows))
    s, b = len(d.seeds), len(d.boot)
    out = []
    for label, (values, _) in effect_rows(d, p["figures"]).items():
        if label.startswith("DSTE minus Student"):  # claim 6 is a probability, not mAP
            continue
        video = values[1 + s + b : 1 + s + 2 * b]
        lo, hi = stats.interval(video, d.level)
        out.append(
            (
                label,
                float(max(values[0] - lo, hi - values[0])),
                float(np.std(values[1 : 1 + s], ddof=1)),
            )
        )
    return d.n_videos, s, out


def half_width(video_half: float, v0: int, v: int, sd: float, seeds: int, level: float) -> float:
    seed_half = stats.t_quantile(0.5 + level / 2, seeds - 1) * sd / math.sqrt(seeds)
    return math.sqrt(video_half**2 * v0 / v + seed_half**2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--times", required=True, help="JSON of measured stage seconds (see above)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[3, 4, 5, 6])
    ap.add_argument("--videos", type=int, nargs="*", default=[240, 480, 720, 960])
    ap.add_argument("--schedule", help="one schedule of --times (default: all), run by --results")
    a = ap.parse_args()
    v0, _, effects = parts(Path(a.results), Path(a.params))
    schedules = json.loads(Path(a.times).read_text())
    if a.schedule:
        schedules = {a.schedule: schedules[a.schedule]}
    print("| schedule | seeds | videos | minutes | widest half-width (mAP) | effect |")
    print("|---|---|---|---|---|---|")
    for name, t in schedules.items():
        for s in a.seeds:
            for v in a.videos:
                secs = (
                    t["install"]
                    + t["data"]
                    + t["per_video_data"] * v
                    + s * (t["per_seed_train"] + t["per_seed_video"] * v)
                    + t["evaluate"]
                )
                widest = max(
                    (half_width(vh, v0, v, sd, s, 0.95), label) for label, vh, sd in effects
                )
                print(f"| {name} | {s} | {v} | {secs / 60:.1f} | {widest[0]:.2f} | {widest[1]} |")


if __name__ == "__main__":
    main()
