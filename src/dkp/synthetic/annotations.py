"""The ActivityNet v1.3 annotation file for a list of video specs (a pure function).

Same layout as the official `activity_net.v1-3.min.json`: `version`, `taxonomy`
(nodes with nodeId, nodeName, parentId, parentName; leaves are the classes) and
`database` (per video: subset, duration, resolution, url, annotations).
"""

from __future__ import annotations

from . import classes
from .spec import VideoSpec

VERSION = "VERSION 1.3"


def _sec(x: float) -> float:
    return round(float(x), 3)


def taxonomy(num_classes: int) -> list[dict]:
    """Root -> one node per shape used -> leaf classes, leaves listed in class-index order."""
    nodes = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None}]
    used = sorted({classes.class_parts(c)[0] for c in range(num_classes)})
    shape_node = {}
    for shape in used:
        node = {
            "nodeId": len(nodes),
            "nodeName": f"{classes.SHAPES[shape]} objects",
            "parentId": 0,
            "parentName": "Root",
        }
        shape_node[shape] = node
        nodes.append(node)
    for c in range(num_classes):
        parent = shape_node[classes.class_parts(c)[0]]
        nodes.append(
            {
                "nodeId": len(nodes),
                "nodeName": classes.class_name(c),
                "parentId": parent["nodeId"],
                "parentName": parent["nodeName"],
            }
        )
    return nodes


def entry(spec: VideoSpec) -> dict:
    return {
        "subset": spec.subset,
        "duration": _sec(spec.duration),
        "resolution": f"{spec.size}x{spec.size}",
        "url": f"https://www.youtube.com/watch?v={spec.vid}",
        "annotations": [
            {"segment": [_sec(s), _sec(e)], "label": spec.label} for s, e in spec.segments_seconds()
        ],
    }


def build(specs: list[VideoSpec], num_classes: int) -> dict:
    return {
        "version": VERSION,
        "taxonomy": taxonomy(num_classes),
        "database": {s.vid: entry(s) for s in specs},
    }
