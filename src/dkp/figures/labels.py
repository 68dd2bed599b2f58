"""Point labels that do not overlap: greedy placement around each marker, measured in display space.

Each label tries offsets around its point (nearest first) and keeps the one
that overlaps least with labels already placed, markers, the curves' lines, the
legend and the axes' edge. Deterministic: fixed candidate order, first best wins.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from matplotlib.transforms import Bbox

# (dx, dy) directions in points, nearest placements first; ha/va put the text on that side.
_DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
_RADII = (3.5, 7.0, 11.0)


def _align(dx: float, dy: float) -> tuple[str, str]:
    ha = "left" if dx > 0 else "right" if dx < 0 else "center"
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    return ha, va


def _area(a: Bbox, b: Bbox) -> float:
    inter = Bbox.intersection(a, b)
    return 0.0 if inter is None else inter.width * inter.height


def _outside(box: Bbox, frame: Bbox) -> float:
    inter = Bbox.intersection(box, frame)
    inside = 0.0 if inter is None else inter.width * inter.height
    return box.width * box.height - inside


def _line_samples(ax, polylines) -> np.ndarray:
    """Points along each polyline (display coords), dense enough to hit any label box."""
    pts = []
    for xs, ys in polylines:
        xy = ax.transData.transform(np.column_stack([xs, ys]))
        for a, b in zip(xy[:-1], xy[1:]):
            t = np.linspace(0.0, 1.0, 40)[:, None]
            pts.append(a + t * (b - a))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def place(ax, points, polylines, fontsize: float, marker_pt: float, avoid=()) -> list:
    """Annotate each (x, y, text, color) of points; return the annotations.

    polylines: (xs, ys) lines drawn on ax that labels should not cross; avoid:
    extra display-space Bboxes (e.g. the legend). Call after the figure layout is final.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px_per_pt = fig.dpi / 72.0
    half = 0.5 * marker_pt * px_per_pt
    markers = [ax.transData.transform((x, y)) for x, y, _, _ in points]
    marker_boxes = [
        Bbox.from_extents(mx - half, my - half, mx + half, my + half) for mx, my in markers
    ]
    samples = _line_samples(ax, polylines)
    placed: list[Bbox] = []
    out = []
    for i, (x, y, text, color) in enumerate(points):
        annotate = partial(
            ax.annotate, text, (x, y), textcoords="offset points", fontsize=fontsize, color=color
        )
        best = None
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                norm = np.hypot(dx, dy)
                off = (radius * dx / norm, radius * dy / norm)
                ha, va = _align(dx, dy)
                ann = annotate(xytext=off, ha=ha, va=va)
                box = ann.get_window_extent(renderer).padded(0.6 * px_per_pt)
                ann.remove()
                area = box.width * box.height
                cost = (
                    20.0 * _outside(box, frame) / area
                    + 10.0 * sum(_area(box, p) for p in placed) / area
                    + 10.0 * sum(_area(box, a) for a in avoid) / area
                    + 5.0 * sum(_area(box, m) for j, m in enumerate(marker_boxes) if j != i) / area
                    + 0.5 * float(box.count_contains(samples) if len(samples) else 0)
                    + 0.02 * radius
                )
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, off, ha, va, box)
        _, off, ha, va, box = best
        placed.append(box)
        out.append(annotate(xytext=off, ha=ha, va=va))
    return out
