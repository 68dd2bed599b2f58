"""`dkp figures`: Figures S-1, S-2, S-3 and the generated report results/README.md.

Reads results/curves.csv, the S-3 configuration's frames.json, the frame store
and data/classes.txt; writes results/figures/s{1,2,3}.{png,pdf} and
results/README.md, each atomically.
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import clean_stale_temps
from ..errors import DkpError

CURVES = Path("results/curves.csv")
FIGURES = Path("results/figures")
REPORT = Path("results/README.md")


def _classes(p: dict) -> list[str]:
    """Class names for S-3 titles; frames.json carries each video's label, so this is a fallback."""
    from .. import framestore

    try:
        return framestore.load_classes(p)
    except DkpError:
        return []


def run(p: dict, args=None) -> None:
    from . import claims, curves, report, s3

    rows = curves.load(CURVES)
    curves.check_groups(rows, p)
    videos = s3.load_videos(s3.frames_json_path(p))
    chosen = s3.select(videos, p["figures"]["s3_videos"])
    clean_stale_temps(FIGURES)
    # S-3 first: it reads the frame store, the one input that can still fail here
    written = s3.render(p, chosen, _classes(p), FIGURES / "s3")
    written += curves.render_s1(rows, FIGURES / "s1", p["figures"]["dpi"])
    written += curves.render_s2(rows, FIGURES / "s2", p["figures"]["dpi"])
    verdicts = claims.evaluate_all(rows, videos, p["figures"])
    written.append(report.write(p, rows, verdicts, [str(v["id"]) for v in chosen], REPORT))
    for v in verdicts:
        print(f"claim {v.number}: {v.status}")
    print("wrote " + ", ".join(str(w) for w in written))
