"""Frame rendering: a pure function of (video spec, frame index), vectorised over frames.

Frame k shows time t = k / fps in its camera shot's scene: the background layer cropped at the pan
position for t; inside the labelled segments the textured object is drawn over
it; a static occluder (if any) over both; then a per-frame gain, bias and
Gaussian noise. Per-frame randomness comes from a generator seeded by
(render_seed, k), so any frame can be rendered alone and equals the same frame
rendered within the whole video.
"""

from __future__ import annotations

import numpy as np

from .scene import SHARPEN, Scene, build_scene, coverage_from_sdf, shape_sdf
from .spec import VideoSpec

ANGLE_JITTER = 0.03  # rad, per-frame wobble of the object and its texture
GAIN = (0.8, 1.2)  # per-frame multiplicative brightness
BIAS = (-0.1, 0.1)  # per-frame additive brightness
CHUNK = 64  # frames rendered per vectorised step (bounds memory)


def _frame_rng(spec: VideoSpec, k: int, stream: int) -> np.random.Generator:
    """Generator of frame k; stream 1 = geometry and photometry, stream 2 = pixel noise."""
    return np.random.default_rng([spec.render_seed, stream, int(k)])


def _photometric(spec: VideoSpec, frames: np.ndarray):
    """Per-frame (jitter, gain, bias), each (T,)."""
    draws = []
    for k in frames:
        rng = _frame_rng(spec, k, 1)
        draws.append((rng.normal() * ANGLE_JITTER, rng.uniform(*GAIN), rng.uniform(*BIAS)))
    return np.array(draws, dtype=np.float64).reshape(-1, 3).T


def _check(spec: VideoSpec, frames) -> np.ndarray:
    frames = np.atleast_1d(np.asarray(frames, dtype=np.int64))
    if frames.size and (frames.min() < 0 or frames.max() >= spec.n_frames):
        raise ValueError(f"frame index outside 0..{spec.n_frames - 1} for video {spec.vid}")
    return frames


def _object(spec: VideoSpec, scene: Scene, t: np.ndarray, jitter: np.ndarray):
    """Alpha (T, S, S) and colour (T, S, S, 3) of the object at times t (all assumed active)."""
    f32 = np.float32
    s = spec.size
    yy, xx = np.mgrid[0:s, 0:s].astype(f32) + f32(0.5)
    cx, cy = scene.centre[:, None] + scene.move_amp[:, None] * np.sin(
        2 * np.pi * t[None] / scene.move_period[:, None] + scene.move_phase[:, None]
    )
    angle = scene.angle0 + scene.spin * t + jitter
    amp, period, phase = scene.pulse
    radius = (scene.radius * (1 + amp * np.sin(2 * np.pi * t / period + phase))).astype(f32)[
        :, None, None
    ]
    dx = xx[None] - cx.astype(f32)[:, None, None]
    dy = yy[None] - cy.astype(f32)[:, None, None]
    cos, sin = np.cos(angle).astype(f32)[:, None, None], np.sin(angle).astype(f32)[:, None, None]
    u, v = dx * cos + dy * sin, dy * cos - dx * sin  # object frame
    alpha = coverage_from_sdf(shape_sdf(scene.shape, u, v, radius))
    # texture coordinates in cells: object frame rotated by tex_angle, scaled, shifted
    ca, sa = f32(np.cos(scene.tex_angle) / scene.cell), f32(np.sin(scene.tex_angle) / scene.cell)
    tx = u * ca + v * sa + f32(scene.tex_phase[0] - 0.5)
    ty = v * ca - u * sa + f32(scene.tex_phase[1] - 0.5)
    x0, y0 = np.floor(tx), np.floor(ty)
    fx, fy = tx - x0, ty - y0
    x0, y0 = x0.astype(np.int32) & 3, y0.astype(np.int32) & 3  # & 3 == mod 4, also for negatives
    x1, y1 = (x0 + 1) & 3, (y0 + 1) & 3
    flat = scene.tile.ravel()
    r0, r1 = y0 * 4, y1 * 4
    val = (flat[r0 + x0] * (1 - fx) + flat[r0 + x1] * fx) * (1 - fy) + (
        flat[r1 + x0] * (1 - fx) + flat[r1 + x1] * fx
    ) * fy
    val = np.clip((val - f32(0.5)) * f32(SHARPEN) + f32(0.5), 0, 1)[..., None]
    colour = scene.colour_off + (scene.colour_on - scene.colour_off) * val
    return alpha.astype(f32), colour.astype(f32)


def _background(spec: VideoSpec, scene: Scene, t: np.ndarray) -> np.ndarray:
    m, s = scene.pan_margin, spec.size
    off = np.rint(
        m + m * np.sin(2 * np.pi * t[None] / scene.pan_period[:, None] + scene.pan_phase[:, None])
    ).astype(np.int64)  # (2, T): x, y
    idx = np.arange(s)
    rows = (off[1][:, None] + idx[None])[:, :, None]
    cols = (off[0][:, None] + idx[None])[:, None, :]
    return scene.background[rows, cols]


def _by_shot(spec: VideoSpec, frames: np.ndarray, scene: Scene | None):
    """(positions, scene) per camera shot present in frames; a given scene serves all frames."""
    if scene is not None:
        yield np.arange(frames.size), scene
        return
    shots = spec.shot_of(frames)
    for shot in np.unique(shots):
        yield np.flatnonzero(shots == shot), build_scene(spec, int(shot))


def object_mask(spec: VideoSpec, frames, scene: Scene | None = None) -> np.ndarray:
    """Visible alpha of the labelled object, (T, S, S) float32; all zero outside the segments."""
    frames = _check(spec, frames)
    out = np.zeros((frames.size, spec.size, spec.size), dtype=np.float32)
    for pos, shot_scene in _by_shot(spec, frames, scene):
        out[pos] = _object_mask(spec, frames[pos], shot_scene)
    return out


def _object_mask(spec: VideoSpec, frames: np.ndarray, scene: Scene) -> np.ndarray:
    out = np.zeros((frames.size, spec.size, spec.size), dtype=np.float32)
    act = spec.active(frames)
    if act.any():
        jitter, _, _ = _photometric(spec, frames[act])
        alpha, _ = _object(spec, scene, frames[act] / spec.fps, jitter)
        if scene.occluder_alpha is not None:
            alpha = alpha * (1 - scene.occluder_alpha)
        out[act] = alpha
    return out


def _render_chunk(spec: VideoSpec, scene: Scene, frames: np.ndarray) -> np.ndarray:
    t = frames / spec.fps
    jitter, gain, bias = _photometric(spec, frames)
    img = _background(spec, scene, t)
    act = spec.active(frames)
    if act.any():
        alpha, colour = _object(spec, scene, t[act], jitter[act])
        a = alpha[..., None]
        img[act] = img[act] * (1 - a) + colour * a
    if scene.occluder_alpha is not None:
        a = scene.occluder_alpha[None, ..., None]
        img = img * (1 - a) + scene.occluder_colour * a
    img = img * gain[:, None, None, None].astype(np.float32) + bias[:, None, None, None].astype(
        np.float32
    )
    shape = (spec.size, spec.size, 3)
    for i, k in enumerate(frames):
        img[i] += _frame_rng(spec, k, 2).standard_normal(shape, dtype=np.float32) * np.float32(
            spec.noise
        )
    return np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)


def render_frames(spec: VideoSpec, frames, scene: Scene | None = None) -> np.ndarray:
    """uint8 RGB frames (T, S, S, 3) for the given frame indices of the video."""
    frames = _check(spec, frames)
    out = np.empty((frames.size, spec.size, spec.size, 3), dtype=np.uint8)
    for pos, shot_scene in _by_shot(spec, frames, scene):
        for start in range(0, pos.size, CHUNK):
            sel = pos[start : start + CHUNK]
            out[sel] = _render_chunk(spec, shot_scene, frames[sel])
    return out
