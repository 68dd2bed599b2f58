"""`dkp data-report`: what ingest and extraction kept and skipped -> results/data_report.json.

Per subset: videos in the manifest, ok / missing / unreadable at ingest /
unreadable at extraction, extracted videos and frames, videos with several
labels. Overall: annotation rows dropped by reason, and every skipped video id
with its stage and reason (rows dropped only by the max_videos_per_subset cap
are counted, not listed). Sorted keys and lists, so reruns are byte-identical.
"""

from __future__ import annotations

import sys

from . import framestore, layout
from .atomic import write_json
from .ingest.manifest import CAPPED


def _subset_counts(s, skipped, name: str) -> dict:
    """Videos of one subset by what became of them (s: manifest rows joined with the frame
    index's x_status)."""
    ingested = s["status"].eq("ok")
    return {
        "videos": int(len(s)),
        "ok": int((ingested & s["x_status"].eq("ok")).sum()),
        "missing": int(s["status"].eq("missing").sum()),
        "unreadable_ingest": int(s["status"].eq("unreadable").sum()),
        "unreadable_extraction": int((ingested & s["x_status"].eq("unreadable")).sum()),
        "not_extracted": int((ingested & s["x_status"].isna()).sum()),
        "frames_extracted": int(s.loc[s["x_status"].eq("ok"), "n_frames"].sum()),
        "multi_label": int((s["n_labels"] > 1).sum()),
        "capped": int((skipped["subset"].eq(name) & skipped["reason"].eq(CAPPED)).sum()),
    }


def _skipped_list(manifest, skipped, frames) -> list[dict]:
    """Every video left out, with the stage and the reason, sorted."""

    def entry(row, stage: str, reason: str) -> dict:
        return {"id": row.id, "subset": row.subset, "stage": stage, "reason": reason}

    listed = [
        entry(r, "ingest", r.reason + (f": {r.detail}" if r.detail else ""))
        for r in skipped[skipped["reason"] != CAPPED].itertuples()
    ]
    listed += [
        entry(r, "ingest", f"{r.status}: {r.reason}")
        for r in manifest[manifest["status"] != "ok"].itertuples()
    ]
    failed = frames[frames["status"].eq("ok") & frames["x_status"].eq("unreadable")]
    listed += [entry(r, "frames", f"unreadable: {r.x_reason}") for r in failed.itertuples()]
    return sorted(listed, key=lambda r: (r["subset"], r["id"], r["stage"], r["reason"]))


def build(p: dict, classes: list[str], manifest, skipped, index) -> dict:
    """The report from the three tables (pure: no file access)."""
    frames = manifest[["id", "subset", "status", "n_labels"]].merge(
        index[["id", "status", "reason", "n_frames"]].rename(
            columns={"status": "x_status", "reason": "x_reason"}
        ),
        on="id",
        how="left",
    )
    subsets = {
        name: _subset_counts(frames[frames["subset"] == name], skipped, name)
        for name in sorted(set(manifest["subset"]))
    }
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
        "skipped": _skipped_list(manifest, skipped, frames),
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
    write_json(layout.DATA_REPORT, report)
    parts = ", ".join(
        f"{k}: {v['ok']}/{v['videos']} ok, {v['frames_extracted']} frames"
        for k, v in report["subsets"].items()
    )
    print(
        f"dkp data-report: {parts}; {len(report['skipped'])} skipped -> {layout.DATA_REPORT}",
        file=sys.stderr,
    )
