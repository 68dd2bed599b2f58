"""Read an ActivityNet v1.3 annotation file (activity_net.v1-3.min.json); the synthetic data too.

Decisions (README, "Ingest"):
- label = the first annotation's label; `segments` = the annotations with that label;
  `n_labels` = distinct labels of the video (> 1 is counted by the data report);
- classes = leaf nodes of the taxonomy in file order (`taxonomy`) or sorted by name;
  with data.class_list set, only the listed classes are kept;
- skipped with a recorded reason, never fatal: a duplicate id (the first occurrence
  is kept), a subset other than train/val (ActivityNet's `testing` has no labels),
  a video without annotations, a label not in the taxonomy or class list, an entry
  whose duration or segments are not numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DkpError
from . import manifest as m


class _Object(dict):
    """A JSON object that remembers the keys it saw twice (json keeps only the last silently)."""

    duplicates: list

    @classmethod
    def from_pairs(cls, pairs):
        obj = cls()
        obj.duplicates = []
        for key, value in pairs:
            if key in obj:
                obj.duplicates.append((key, value))
            else:
                obj[key] = value
        return obj


def read_json(path: str | Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh, object_pairs_hook=_Object.from_pairs)
    except FileNotFoundError:
        raise DkpError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DkpError(
            f"{path}: not a valid ActivityNet JSON file{where}: {getattr(exc, 'msg', exc)}"
        ) from None


def taxonomy_leaves(taxonomy: list) -> list[str]:
    """Names of the nodes that are nobody's parent, in file order, each once."""
    try:
        parents = {node["parentId"] for node in taxonomy}
        leaves = [node["nodeName"] for node in taxonomy if node["nodeId"] not in parents]
    except (KeyError, TypeError) as exc:
        raise DkpError(
            f"taxonomy: expected nodes with nodeId, parentId, nodeName, found a node without {exc}"
        ) from None
    return list(dict.fromkeys(leaves))


def _video(vid: str, entry: dict, subset: str) -> m.Video:
    """One database entry -> Video; KeyError/TypeError/ValueError on a malformed entry."""
    anns = entry["annotations"]
    labels = [a["label"] for a in anns]
    label = labels[0]
    segments = tuple(
        sorted(
            (float(a["segment"][0]), float(a["segment"][1])) for a in anns if a["label"] == label
        )
    )
    duration = float(entry["duration"])
    if not duration > 0:
        raise ValueError(f"duration {entry['duration']!r}")
    return m.Video(vid, subset, label, duration, segments, len(set(labels)))


def parse(
    path: str | Path, subsets: list[str], class_order: str, class_list: list[str] | None = None
) -> m.Parsed:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("database"), dict):
        raise DkpError(f"{path}: expected an ActivityNet JSON object with a 'database' mapping")
    database = doc["database"]
    taxonomy = doc.get("taxonomy")
    if taxonomy:
        leaves = taxonomy_leaves(taxonomy)
    elif class_order == "taxonomy":
        raise DkpError(f"{path}: no 'taxonomy' to order classes by (set data.class_order: sorted)")
    else:  # no taxonomy: the classes are the labels the used subsets carry
        leaves = sorted(
            {
                a.get("label")
                for e in database.values()
                if isinstance(e, dict) and e.get("subset") in subsets
                for a in (e.get("annotations") or [])
                if isinstance(a, dict) and a.get("label")
            }
        )
    classes = sorted(leaves) if class_order == "sorted" else leaves
    if class_list is not None:
        wanted = set(class_list)
        classes = [c for c in classes if c in wanted]
    allowed = set(classes)

    parsed = m.Parsed(classes)
    for vid, entry in database.duplicates:
        subset = entry.get("subset", "") if isinstance(entry, dict) else ""
        parsed.skips.append(m.Skip(vid, subset, m.DUPLICATE, "later occurrence dropped"))
    for vid in sorted(database):
        entry = database[vid]
        subset = entry.get("subset", "") if isinstance(entry, dict) else ""
        if subset not in subsets:
            detail = f"{subset} (no labels)" if subset == "testing" else subset
            parsed.skips.append(m.Skip(vid, subset, m.SUBSET_UNUSED, detail))
            continue
        if not entry.get("annotations"):
            parsed.skips.append(m.Skip(vid, subset, m.NO_LABEL))
            continue
        try:
            video = _video(vid, entry, subset)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            parsed.skips.append(m.Skip(vid, subset, m.INVALID, f"{type(exc).__name__}: {exc}"))
            continue
        if video.label not in allowed:
            if taxonomy and video.label not in leaves:
                parsed.skips.append(m.Skip(vid, subset, m.NOT_IN_TAXONOMY, video.label))
            else:
                parsed.skips.append(m.Skip(vid, subset, m.NOT_IN_CLASS_LIST, video.label))
            continue
        parsed.videos.append(video)
    return parsed
