"""`dkp figures`: Figures S-1, S-2, S-3 and the generated report results/README.md.

Reads results/curves.csv, results/bootstrap.npz (the evaluate stage's draws: every
claim's effect is computed on them), the S-3 configuration's frames.json, the frame
store and data/classes.txt; writes results/figures/s{1,2,3}.{png,pdf},
results/claims.json (DVC metrics: each claim's verdict, effects and intervals) and
results/README.md, each atomically.
"""

from __future__ import annotations

from .. import framestore, layout
from ..atomic import clean_stale_temps, write_json
from ..errors import DkpError

CURVES = layout.CURVES
BOOTSTRAP = layout.BOOTSTRAP
FIGURES = layout.FIGURES
REPORT = layout.REPORT
CLAIMS = layout.CLAIMS


def _classes(p: dict) -> list[str]:
    """Class names for S-3 titles; frames.json carries each video's label, so this is a fallback."""
    try:
        return framestore.load_classes(p)
    except DkpError:
        return []


def run(p: dict, args=None) -> None:
    from . import claims, curves, report, s3

    rows = curves.load(CURVES)
    curves.check_groups(rows, p)
    arrays = curves.load_bootstrap(BOOTSTRAP, rows)
    videos = s3.load_videos(s3.frames_json_path(p))
    chosen = s3.select(videos, p["figures"]["s3_videos"])
    clean_stale_temps(FIGURES)
    # S-3 first: it reads the frame store, the one input that can still fail here
    written = s3.render(p, chosen, _classes(p), FIGURES / "s3")
    written += curves.render_s1(rows, FIGURES / "s1", p["figures"]["dpi"])
    written += curves.render_s2(rows, FIGURES / "s2", p["figures"]["dpi"])
    draws = claims.Draws.from_arrays(rows, arrays)
    verdicts = claims.evaluate_all(draws, p["figures"])
    write_json(CLAIMS, claims.claims_json(verdicts))
    written.append(CLAIMS)
    written.append(
        report.write(p, rows, verdicts, [str(v["id"]) for v in chosen], REPORT, draws=draws)
    )
    for v in verdicts:
        print(f"claim {v.number}: {v.status}")
    print("wrote " + ", ".join(str(w) for w in written))
