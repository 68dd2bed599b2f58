"""Per-video scene: the background layer and the object's parameters, drawn once from the spec.

Lengths scale with the frame side (`size / 64`), so the defaults describe a
64 x 64 video. The background layer is larger than a frame; frames crop it
with a slow pan. It holds clutter and distractor objects with generic
textures (stripes, checker, dots, rings, never the class tiles) of any shape,
so background frames carry no class evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import classes
from .spec import VideoSpec

PAN_MARGIN = 0.15  # background layer extends this fraction of the frame on each side
CELL_PX = 1.6  # tile cell size at 64 px (+-15% per video)
RADIUS_PX = (12.0, 20.0)  # object radius range at 64 px
SHARPEN = 2.0  # contrast gain applied to the bilinear tile before colouring
MIN_LUMA_GAP = (
    0.3  # the two tile colours differ at least this much in luma, so 4:2:0 chroma keeps the texture
)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def shape_sdf(shape: int, u: np.ndarray, v: np.ndarray, r) -> np.ndarray:
    """Signed distance (px, negative inside) to a shape of about equal area for every shape."""
    if shape == 0:  # disk
        return np.hypot(u, v) - r
    if shape == 1:  # square, side 2 x 0.886 r
        return np.maximum(np.abs(u), np.abs(v)) - 0.886 * r
    if shape == 2:  # equilateral triangle, inradius 0.75 r
        sd = None
        for k in range(3):
            a = -np.pi / 2 + 2 * np.pi * k / 3
            d = u * float(np.cos(a)) + v * float(np.sin(a))  # python floats keep float32
            sd = d if sd is None else np.maximum(sd, d)
        return sd - 0.75 * r
    arm, half = 1.1 * r, 0.42 * r  # plus-cross: union of two bars
    return np.minimum(
        np.maximum(np.abs(u) - arm, np.abs(v) - half), np.maximum(np.abs(u) - half, np.abs(v) - arm)
    )


def coverage_from_sdf(sd: np.ndarray) -> np.ndarray:
    """Anti-aliased alpha: one-pixel ramp across the edge."""
    return np.clip(0.5 - sd, 0.0, 1.0)


def _upsample(grid: np.ndarray, n: int) -> np.ndarray:
    """Bilinear upsampling of a (g, g, C) grid to (n, n, C)."""
    g = grid.shape[0]
    x = np.linspace(0, g - 1, n, dtype=np.float32)
    i0 = np.minimum(np.floor(x).astype(int), g - 2)
    f = (x - i0)[:, None]
    rows = grid[i0] * (1 - f[:, :, None]) + grid[i0 + 1] * f[:, :, None]
    return rows[:, i0] * (1 - f[None]) + rows[:, i0 + 1] * f[None]


def _generic_texture(kind: int, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    if kind == 0:  # stripes
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    if kind == 1:  # checker
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if kind == 2:  # dots
        du, dv = u % period - period / 2, v % period - period / 2
        return (np.hypot(du, dv) < period / 3).astype(np.float32)
    return 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(u, v) / period)  # rings


def _paint(layer: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Blend colour (3,) or (H, W, 3) over layer with alpha (H, W), within alpha's bounding box:
    outside it alpha is 0 and the blend leaves the layer's values as they are."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not rows.size:
        return
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    a = alpha[box][..., None]
    part = layer[box]  # a view: the blend writes into layer
    part *= 1 - a
    part += a * (colour[box] if colour.ndim == 3 else colour)


def _contrasting_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    while True:
        a, b = rng.uniform(0.05, 0.95, size=(2, 3)).astype(np.float32)
        if abs(luma(a) - luma(b)) >= MIN_LUMA_GAP:
            return a, b


def background_layer(rng: np.random.Generator, side: int, scale: float) -> np.ndarray:
    """Base colour, low-frequency colour noise, clutter and two distractor objects;
    (side, side, 3)."""
    base = rng.uniform(0.15, 0.85, size=3).astype(np.float32)
    layer = base + _upsample(rng.normal(0, 0.12, size=(5, 5, 3)).astype(np.float32), side)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    for _ in range(int(rng.integers(6, 13))):  # clutter: small disks and strokes
        cx, cy = rng.uniform(0, side, size=2)
        colour = rng.uniform(0, 1, size=3).astype(np.float32)
        if rng.random() < 0.5:
            sd = np.hypot(xx - cx, yy - cy) - rng.uniform(1, 3) * scale
        else:
            a, half = rng.uniform(0, np.pi), rng.uniform(2, 6) * scale
            along = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
            across = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
            sd = np.maximum(np.abs(along) - half, np.abs(across) - 0.5 * scale)
        _paint(layer, coverage_from_sdf(sd), colour)
    for _ in range(2):  # distractors: any shape, generic texture
        cx, cy = rng.uniform(0.15 * side, 0.85 * side, size=2)
        r, a = rng.uniform(6, 11) * scale, rng.uniform(0, 2 * np.pi)
        u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        alpha = coverage_from_sdf(shape_sdf(int(rng.integers(4)), u, v, r))
        c0, c1 = _contrasting_colours(rng)
        tex = _generic_texture(int(rng.integers(4)), u, v, rng.uniform(2.5, 5) * scale)[..., None]
        _paint(layer, alpha, c0 * (1 - tex) + c1 * tex)
    return np.clip(layer, 0, 1).astype(np.float32)


@dataclass
class Scene:
    """Everything about a video that does not change from frame to frame."""

    background: np.ndarray  # (B, B, 3) float32 in [0, 1]
    pan_margin: int  # frames crop background[y:y+S, x:x+S], x, y in [0, 2 * margin]
    pan_period: np.ndarray  # (2,) s, x then y
    pan_phase: np.ndarray  # (2,)
    shape: int
    tile: np.ndarray  # (4, 4) float32
    radius: float  # px
    centre: np.ndarray  # (2,) px, mean position
    move_amp: np.ndarray  # (2,) px
    move_period: np.ndarray  # (2,) s
    move_phase: np.ndarray  # (2,)
    angle0: float  # rad
    spin: float  # rad/s
    pulse: tuple[float, float, float]  # relative amplitude, period (s), phase
    tex_angle: float  # tile orientation relative to the object (rad)
    cell: float  # tile cell side (px)
    tex_phase: np.ndarray  # (2,) in cells
    colour_off: np.ndarray  # (3,)
    colour_on: np.ndarray  # (3,)
    occluder_alpha: np.ndarray | None  # (S, S) alpha of a static disk in front of everything
    occluder_colour: np.ndarray | None


def build_scene(spec: VideoSpec, shot: int = 0) -> Scene:
    """The scene of one camera shot of a video: a pure function of the spec and the shot number.

    Every shot redraws colours, background, pose and texture phase while the class
    (shape and tile) stays: like the shot changes of real videos, and it makes
    per-video appearance useless for telling classes apart.
    """
    rng = np.random.default_rng([spec.render_seed, 0, shot])
    size, scale = spec.size, spec.size / 64.0
    margin = int(round(PAN_MARGIN * size))
    background = background_layer(rng, size + 2 * margin, scale)
    radius = float(rng.uniform(*RADIUS_PX) * scale)
    centre = size / 2 + rng.uniform(-0.08, 0.08, size=2) * size
    room = max(0.0, size / 2 - 1.1 * radius - 0.08 * size)
    colour_off, colour_on = _contrasting_colours(rng)
    scene = Scene(
        background=background,
        pan_margin=margin,
        pan_period=rng.uniform(20, 60, size=2),
        pan_phase=rng.uniform(0, 2 * np.pi, size=2),
        shape=classes.class_parts(spec.class_index)[0],
        tile=classes.tile(spec.class_index),
        radius=radius,
        centre=centre,
        move_amp=rng.uniform(0, room, size=2) if room else np.zeros(2),
        move_period=rng.uniform(15, 45, size=2),
        move_phase=rng.uniform(0, 2 * np.pi, size=2),
        angle0=float(rng.uniform(0, 2 * np.pi)),
        spin=float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.3)),
        pulse=(
            float(rng.uniform(0.02, 0.08)),
            float(rng.uniform(4, 12)),
            float(rng.uniform(0, 2 * np.pi)),
        ),
        tex_angle=float(rng.uniform(0, 2 * np.pi)),
        cell=float(CELL_PX * scale * rng.uniform(0.85, 1.15)),
        tex_phase=rng.uniform(0, 4, size=2),
        colour_off=colour_off,
        colour_on=colour_on,
        occluder_alpha=None,
        occluder_colour=None,
    )
    if spec.occluder:  # a static disk near the object's path, partly hiding it
        a = rng.uniform(0, 2 * np.pi)
        at = centre + rng.uniform(0.5, 1.0) * radius * np.array([np.cos(a), np.sin(a)])
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        r_occ = rng.uniform(0.4, 0.7) * radius
        scene.occluder_alpha = coverage_from_sdf(np.hypot(xx - at[0], yy - at[1]) - r_occ).astype(
            np.float32
        )
        scene.occluder_colour = rng.uniform(0, 1, size=3).astype(np.float32)
    return scene
