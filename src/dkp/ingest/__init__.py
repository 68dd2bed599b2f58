"""`dkp data`: annotations + video folder -> data/manifest.csv, data/classes.txt, data/skipped.csv.

One path for every source: a reader turns the annotation file into classes,
videos and skips (activitynet.py reads both the real ActivityNet v1.3 and the
synthetic data, kinetics.py reads Mini-Kinetics); then each subset is capped,
each video's file located and opened once (decord, or PyAV where decord cannot;
status ok, missing or unreadable), and the three files are written atomically, the
manifest last.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import layout
from ..atomic import write_csv, write_text
from ..errors import DkpError
from . import activitynet, kinetics, videos
from . import manifest as m


def read_annotations(p: dict) -> m.Parsed:
    d = p["data"]
    subsets = [d["train_subset"], d["val_subset"]] + (
        [d["tune_subset"]] if d["tune_subset"] else []
    )
    if len(set(subsets)) < len(subsets):
        raise DkpError(
            f"data.train_subset, val_subset and tune_subset must differ, found {subsets}: "
            "training, evaluation and hyperparameter tuning need different subsets"
        )
    if not Path(d["annotations"]).exists():
        hint = " (run dkp synthesize first)" if d["source"] == "synthetic" else ""
        raise DkpError(f"data.annotations: {d['annotations']} not found{hint}")
    class_list = kinetics.read_class_list(d["class_list"]) if d["class_list"] else None
    if d["source"] == "kinetics":
        parsed = kinetics.parse(d["annotations"], subsets, class_list)
    else:  # synthetic data is ActivityNet v1.3 format: the very same reader
        parsed = activitynet.parse(d["annotations"], subsets, d["class_order"], class_list)
    if not parsed.classes:
        raise DkpError(f"{d['annotations']}: no classes (empty taxonomy or class list)")
    m.check_subsets(parsed, subsets, d["annotations"])
    return m.cap(parsed, subsets, d["max_videos_per_subset"])


def run(p: dict, args) -> None:
    start = time.perf_counter()
    parsed = read_annotations(p)
    folder = p["data"]["videos"]
    if not Path(folder).is_dir():
        hint = " (run dkp synthesize first)" if p["data"]["source"] == "synthetic" else ""
        raise DkpError(f"data.videos: folder {folder} not found{hint}")
    files = videos.index_folder(folder)
    paths = [videos.locate(v.id, files) for v in parsed.videos]
    probes = videos.probe_many(paths, p["frames"]["workers"])
    table = m.manifest_frame(parsed, [videos.relpath(x) for x in paths], probes)

    write_csv(layout.SKIPPED, m.skipped_frame(parsed.skips))
    write_text(layout.CLASSES, "".join(f"{c}\n" for c in parsed.classes))
    write_csv(layout.MANIFEST, table)  # last: its presence means the stage completed

    counts = table["status"].value_counts()
    print(
        f"dkp data: {len(table)} videos ({counts.get('ok', 0)} ok, {counts.get('missing', 0)} "
        f"missing, {counts.get('unreadable', 0)} unreadable), {len(parsed.classes)} classes, "
        f"{len(parsed.skips)} annotation rows skipped -> {layout.MANIFEST} in "
        f"{time.perf_counter() - start:.1f}s",
        file=sys.stderr,
    )
