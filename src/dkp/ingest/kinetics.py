"""Read Mini-Kinetics: a Kinetics CSV (label,youtube_id,time_start,time_end,split) and a class list.

A clip's id is its file stem `<youtube_id>_<start:06d>_<end:06d>` (the Kinetics
downloader's naming); duration = time_end - time_start; one segment covering the
clip. Classes are the class list's names, sorted. Skipped with a recorded reason:
a label not in the class list, a split other than train/val (Kinetics' test split
has no labels), a repeated clip (the first is kept), unparsable times.
Labels are matched ignoring case, underscores vs spaces and surrounding quotes or
blanks, since published class lists differ from the CSVs in exactly these ways.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import DkpError
from . import manifest as m

COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def _key(label: str) -> str:
    return " ".join(label.strip().strip('"').replace("_", " ").lower().split())


def read_class_list(path: str | Path) -> list[str]:
    """Class names, one a line; blank lines and '#' comments ignored; each name once."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise DkpError(f"{path}: cannot read the class list ({type(exc).__name__})") from None
    names = [
        ln.strip().strip('"') for ln in lines if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not names:
        raise DkpError(f"{path}: the class list is empty")
    return list(dict.fromkeys(names))


def _seconds(text: str) -> int:
    value = float(text)
    if value != int(value) or value < 0:
        raise ValueError(f"time {text!r} is not a whole number of seconds")
    return int(value)


def parse(path: str | Path, subsets: list[str], class_list: list[str]) -> m.Parsed:
    classes = sorted(class_list)
    by_key = {_key(c): c for c in classes}
    parsed = m.Parsed(classes)
    seen: set[str] = set()
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise DkpError(f"{path}: annotation file not found") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DkpError(
                f"{path}: expected a Kinetics CSV with columns {','.join(COLUMNS)}, "
                f"missing {','.join(missing)}"
            )
        for line, row in enumerate(reader, start=2):
            if any(
                row[c] is None for c in COLUMNS
            ):  # a short row: csv fills the missing fields with None
                parsed.skips.append(m.Skip(f"line{line}", "", m.INVALID, "missing fields"))
                continue
            subset = row["split"].strip()
            try:
                start, end = _seconds(row["time_start"]), _seconds(row["time_end"])
                if end <= start:
                    raise ValueError(f"time_end {end} <= time_start {start}")
            except (TypeError, ValueError) as exc:
                parsed.skips.append(
                    m.Skip(f"{row['youtube_id']}@line{line}", subset, m.INVALID, str(exc))
                )
                continue
            vid = f"{row['youtube_id'].strip()}_{start:06d}_{end:06d}"
            if vid in seen:
                parsed.skips.append(m.Skip(vid, subset, m.DUPLICATE, f"line {line} dropped"))
                continue
            seen.add(vid)
            if subset not in subsets:
                parsed.skips.append(m.Skip(vid, subset, m.SUBSET_UNUSED, subset))
                continue
            label = by_key.get(_key(row["label"]))
            if label is None:
                parsed.skips.append(m.Skip(vid, subset, m.NOT_IN_CLASS_LIST, row["label"].strip()))
                continue
            parsed.videos.append(
                m.Video(vid, subset, label, float(end - start), ((0.0, float(end - start)),), 1)
            )
    parsed.videos.sort(key=lambda v: v.id)
    return parsed
