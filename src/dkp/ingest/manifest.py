"""Records shared by the annotation readers, and the manifest built from them.

A reader (activitynet, kinetics) turns an annotation file into `Parsed`: the
class list, one `Video` per kept id and one `Skip` per dropped row. The rest of
ingest (cap, locate, probe, write) is the same for every source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from ..errors import DkpError
from ..framestore import MANIFEST_COLUMNS, SKIPPED_COLUMNS

# Skip reasons (categories counted by the data report); the detail names the offending value.
DUPLICATE = "duplicate id"
SUBSET_UNUSED = "subset not used"
NO_LABEL = "no annotations"
NOT_IN_TAXONOMY = "label not in taxonomy"
NOT_IN_CLASS_LIST = "label not in class list"
INVALID = "invalid entry"
CAPPED = "max_videos_per_subset cap"


@dataclass(frozen=True)
class Video:
    id: str
    subset: str
    label: str
    duration: float
    segments: tuple  # ((start, end), ...) of the annotations with the video's label
    n_labels: int  # distinct labels among the video's annotations


@dataclass(frozen=True)
class Skip:
    id: str
    subset: str
    reason: str  # one of the categories above
    detail: str = ""


@dataclass
class Parsed:
    classes: list[str]
    videos: list[Video] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


def check_subsets(parsed: Parsed, subsets: list[str], source: str) -> None:
    """An empty training or validation subset is a configuration error, not a skip."""
    have = {v.subset for v in parsed.videos}
    for s in subsets:
        if s not in have:
            seen = sorted(have | {k.subset for k in parsed.skips if k.subset})
            raise DkpError(
                f"{source}: no usable video in subset {s!r} (subsets found: {seen}; "
                f"check data.train_subset / val_subset / tune_subset and data/skipped.csv reasons)"
            )


def cap(parsed: Parsed, subsets: list[str], limit: int | None) -> Parsed:
    """Keep the first `limit` ids (sorted) of each subset; the rest become CAPPED skips."""
    videos = sorted(parsed.videos, key=lambda v: (subsets.index(v.subset), v.id))
    if limit is None:
        return Parsed(parsed.classes, videos, parsed.skips)
    kept, skips, count = [], list(parsed.skips), {s: 0 for s in subsets}
    for v in videos:
        count[v.subset] += 1
        if count[v.subset] <= limit:
            kept.append(v)
        else:
            skips.append(Skip(v.id, v.subset, CAPPED))
    return Parsed(parsed.classes, kept, skips)


def _num(x: float) -> float:
    """Seconds rounded to the millisecond: stable text in the CSV and in the segments JSON."""
    return round(float(x), 3)


def manifest_frame(parsed: Parsed, paths: list[str], probes: list[tuple[str, str]]) -> pd.DataFrame:
    """The manifest, one row per kept video, in the order of parsed.videos."""
    index = {c: i for i, c in enumerate(parsed.classes)}
    rows = []
    for v, path, (status, reason) in zip(parsed.videos, paths, probes):
        segments = json.dumps([[_num(s), _num(e)] for s, e in v.segments], separators=(",", ":"))
        rows.append(
            {
                "id": v.id,
                "subset": v.subset,
                "label": v.label,
                "label_index": index[v.label],
                "duration": repr(_num(v.duration)),
                "segments": segments,
                "n_labels": v.n_labels,
                "path": path,
                "status": status,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def skipped_frame(skips: list[Skip]) -> pd.DataFrame:
    rows = sorted((s.subset, s.id, s.reason, s.detail) for s in skips)
    return pd.DataFrame(
        [{"id": i, "subset": s, "reason": r, "detail": d} for s, i, r, d in rows],
        columns=SKIPPED_COLUMNS,
    )
