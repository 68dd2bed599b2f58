"""Point labels and legends that cover nothing, placed in display space after the layout is final.

Labels: points drawn at the same place with the same text (a configuration on two curves) get
one label. Each label tries offsets around its point, nearest first, and keeps, among those
whose box stays inside the axes, clear of every marker, every label already placed and the
legend, and nearer its own marker than any other (so it cannot be read as another point's),
the one that crosses the fewest line and bar samples; a label further than _LEADER_FROM points
from its marker is tied to it by a thin leader line instead of by nearness. Only when no
offset is clear does it take the least-blocked one (the tests render the figures and check
that none does).

Legends: the first of a fixed list of corners whose box holds no data (markers, line and bar
samples), else above the axes, outside them.

Deterministic: fixed candidate orders, first best wins.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from matplotlib.transforms import Bbox

# (dx, dy) directions, nearest placements first; ha/va put the text on that side.
_DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
_RADII = (3.5, 7.0, 11.0, 16.0, 22.0, 30.0)
_LEADER_FROM = 12.0  # points: a label further from its marker than this is tied to it by a line
_LEADER = {"arrowstyle": "-", "lw": 0.4, "shrinkA": 0, "shrinkB": 2}
SHARED_COLOR = "0.15"  # a label shared by points of several curves
LEGEND_CORNERS = ("upper left", "lower right", "upper right", "lower left")


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


def line_samples(ax, polylines, step_px: float = 1.0) -> np.ndarray:
    """Points along each polyline (display coords), at most step_px apart."""
    pts = [np.zeros((0, 2))]
    for xs, ys in polylines:
        xy = ax.transData.transform(np.column_stack([xs, ys]))
        if len(xy) == 1:
            pts.append(xy)
        for a, b in zip(xy[:-1], xy[1:]):
            n = max(2, int(np.ceil(np.hypot(*(b - a)) / step_px)) + 1)
            t = np.linspace(0.0, 1.0, n)[:, None]
            pts.append(a + t * (b - a))
    return np.concatenate(pts)


def marker_boxes(ax, xy, marker_pt: float) -> list[Bbox]:
    """Display-space boxes of markers of size marker_pt (points) at data coordinates xy."""
    half = 0.5 * marker_pt * ax.figure.dpi / 72.0
    return [
        Bbox.from_extents(mx - half, my - half, mx + half, my + half)
        for mx, my in ax.transData.transform(np.asarray(xy, float).reshape(-1, 2))
    ]


def box_distance(box: Bbox, xy: np.ndarray) -> np.ndarray:
    """Distances from a box to display points xy (N, 2); 0 inside it."""
    dx = np.maximum(np.maximum(box.x0 - xy[:, 0], xy[:, 0] - box.x1), 0.0)
    dy = np.maximum(np.maximum(box.y0 - xy[:, 1], xy[:, 1] - box.y1), 0.0)
    return np.hypot(dx, dy)


def segment_distance(a: np.ndarray, b: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Distances from display points xy (N, 2) to the segment a-b."""
    ab = b - a
    t = np.clip(((xy - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.hypot(*(xy - (a + t[:, None] * ab)).T)


def merge_shared(points, tol_px: float, ax) -> list[tuple]:
    """Points at the same display position (within tol_px) with the same text become one, drawn in
    SHARED_COLOR when their colours differ; order of first appearance kept."""
    out: list[list] = []
    where = ax.transData.transform(np.array([(x, y) for x, y, *_ in points], float))
    for (x, y, text, color), d in zip(points, where):
        for o in out:
            if o[2] == text and np.hypot(*(o[4] - d)) <= tol_px:
                o[3] = o[3] if o[3] == color else SHARED_COLOR
                break
        else:
            out.append([x, y, text, color, d])
    return [tuple(o[:4]) for o in out]


def place(ax, points, polylines, fontsize: float, marker_pt: float, avoid=()) -> list:
    """Annotate each (x, y, text, color) of points; return the annotations.

    polylines: (xs, ys) lines drawn on ax (curves and error bars) that labels should not cross;
    avoid: extra display-space Bboxes (the legend). Call after the figure layout is final.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px_per_pt = fig.dpi / 72.0
    markers = marker_boxes(ax, [(x, y) for x, y, *_ in points], marker_pt)
    centres = ax.transData.transform(np.array([(x, y) for x, y, *_ in points], float))
    points = merge_shared(points, 1.0, ax)
    samples = line_samples(ax, polylines)
    placed: list[Bbox] = []
    out = []
    for x, y, text, color in points:
        own = ax.transData.transform((x, y))
        others = centres[np.hypot(*(centres - own).T) > 1.0]
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
                blocked = (
                    20.0 * _outside(box, frame)
                    + 10.0 * sum(_area(box, p) for p in placed)
                    + 10.0 * sum(_area(box, a) for a in avoid)
                    + 5.0 * sum(_area(box, m) for m in markers)
                ) / area
                if radius <= _LEADER_FROM and len(others):
                    near = box_distance(box, own[None])[0] + px_per_pt
                    blocked += float(box_distance(box, others).min() <= near)
                elif len(others):  # the leader line must pass no other marker
                    end = np.clip(own, [box.x0, box.y0], [box.x1, box.y1])
                    reach = 0.5 * marker_pt * px_per_pt + px_per_pt
                    blocked += float(segment_distance(own, end, others).min() <= reach)
                cost = (
                    1000.0 * blocked
                    + 0.5 * float(box.count_contains(samples) if len(samples) else 0)
                    + 0.05 * radius
                )
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, off, ha, va, box, radius)
        _, off, ha, va, box, radius = best
        placed.append(box)
        leader = {"arrowprops": {**_LEADER, "color": color}} if radius > _LEADER_FROM else {}
        out.append(annotate(xytext=off, ha=ha, va=va, **leader))
    return out


def legend_clear(box: Bbox, samples: np.ndarray, markers: list[Bbox]) -> bool:
    """No data sample inside the legend box and no marker touching it."""
    return not (len(samples) and box.count_contains(samples)) and not any(
        Bbox.intersection(box, m) is not None for m in markers
    )


def place_legend(ax, polylines, marker_xy, marker_pt: float, relayout, **kw):
    """The axes' legend at the first of LEGEND_CORNERS whose box holds no data (markers at
    marker_xy, samples of polylines), else above the axes with the layout redone by relayout()
    (which must leave the layout final). kw: ax.legend's arguments; ncol_outside: columns when
    outside. Call after the layout is final; returns the legend."""
    ncol_outside = kw.pop("ncol_outside", 2)
    renderer = ax.figure.canvas.get_renderer()
    samples = line_samples(ax, polylines)
    markers = marker_boxes(ax, marker_xy, marker_pt)
    for loc in LEGEND_CORNERS:
        legend = ax.legend(loc=loc, **kw)
        if legend_clear(legend.get_window_extent(renderer).padded(1.0), samples, markers):
            return legend
        legend.remove()
    legend = ax.legend(
        loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=ncol_outside, borderaxespad=0.2, **kw
    )
    relayout()
    return legend
