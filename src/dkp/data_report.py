"""`dkp data-report`: what ingest and extraction kept and skipped -> results/data_report.json.

Per subset: videos in the manifest, ok / missing / unreadable at ingest /
unreadable at extraction, extracted videos and frames, videos with several
labels. Overall: annotation rows dropped by reason, and every skipped video id
with its stage and reason (rows dropped only by the max_videos_per_subset cap
are counted, not listed). Sorted keys and lists, so reruns are byte-identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import framestore
from .atomic import write_json
from .ingest.manifest import CAPPED

REPORT = Path("results/data_report.json")


def build(p: dict, classes: list[str], manifest, skipped, index) -> dict:
    """The report from the three tables (pure: no file access)."""
    frames = manifest[["id", "subset", "status", "n_labels"]].merge(
        index[["id", "status", "reason", "n_frames"]].rename(
            columns={"status": "x_status", "reason": "x_reason"}
        ),
        on="id",
        how="left",
    )
    subsets = {}
    for name in sorted(set(manifest["subset"])):
        s = frames[frames["subset"] == name]
        subsets[name] = {
            "videos": int(len(s)),
            "ok": int((s["status"].eq("ok") & s["x_status"].eq("ok")).sum()),
            "missing": int(s["status"].eq("missing").sum()),
            "unreadable_ingest": int(s["status"].eq("unreadable").sum()),
            "unreadable_extraction": int(
                (s["status"].eq("ok") & s["x_status"].eq("unreadable")).sum()
            ),
            "not_extracted": int((s["status"].eq("ok") & s["x_status"].isna()).sum()),
            "frames_extracted": int(s.loc[s["x_status"].eq("ok"), "n_frames"].sum()),
            "multi_label": int((s["n_labels"] > 1).sum()),
            "capped": int((skipped["subset"].eq(name) & skipped["reason"].eq(CAPPED)).sum()),
        }
    listed = []
    for row in skipped[skipped["reason"] != CAPPED].itertuples():
        listed.append(
            {
                "id": row.id,
                "subset": row.subset,
                "stage": "ingest",
                "reason": row.reason + (f": {row.detail}" if row.detail else ""),
            }
        )
    for row in manifest[manifest["status"] != "ok"].itertuples():
        listed.append(
            {
                "id": row.id,
                "subset": row.subset,
                "stage": "ingest",
                "reason": f"{row.status}: {row.reason}",
            }
        )
    for row in frames[frames["status"].eq("ok") & frames["x_status"].eq("unreadable")].itertuples():
        listed.append(
            {
                "id": row.id,
                "subset": row.subset,
                "stage": "frames",
                "reason": f"unreadable: {row.x_reason}",
            }
        )
    listed.sort(key=lambda r: (r["subset"], r["id"], r["stage"], r["reason"]))
    dropped = skipped["reason"].value_counts()
    return {
        "source": p["data"]["source"],
        "annotations": p["data"]["annotations"],
        "classes": len(classes),
        "frames": {
            "fps": p["frames"]["fps"],
            "size": p["frames"]["size"],
            "crop": p["frames"]["crop"],
            "shards": p["frames"]["shards"],
        },
        "subsets": subsets,
        "multi_label_videos": int((manifest["n_labels"] > 1).sum()),
        "dropped_rows": {str(k): int(v) for k, v in sorted(dropped.items())},
        "skipped": listed,
    }


def run(p: dict, args) -> None:
    manifest = framestore.load_manifest(p)
    report = build(
        p,
        framestore.load_classes(p),
        manifest,
        framestore.load_skipped(p),
        framestore.read_index(p),
    )
    write_json(REPORT, report)
    parts = ", ".join(
        f"{k}: {v['ok']}/{v['videos']} ok, {v['frames_extracted']} frames"
        for k, v in report["subsets"].items()
    )
    print(
        f"dkp data-report: {parts}; {len(report['skipped'])} skipped -> {REPORT}", file=sys.stderr
    )
