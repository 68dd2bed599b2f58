"""Training-time frame sampling and augmentation: pure functions of a numpy Generator.

All randomness of a training run flows through one np.random.Generator (saved in
every resume checkpoint) plus torch's global generator (dropout).
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def tsn_indices(rng: np.random.Generator, candidates: np.ndarray, segments: int) -> np.ndarray:
    """TSN sampling: split the candidate frames into `segments` equal runs, one random frame from
    each.

    Fewer candidates than segments: runs overlap and frames repeat, in order.
    """
    n = len(candidates)
    edges = np.linspace(0, n, segments + 1)
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.maximum(np.ceil(edges[1:]).astype(np.int64), lo + 1)
    return candidates[np.minimum(lo + (rng.random(segments) * (hi - lo)).astype(np.int64), n - 1)]


def spread_indices(rng: np.random.Generator, n_frames: int, n: int) -> np.ndarray:
    """n frames over the whole video: one random frame in each of n equal segments."""
    return tsn_indices(rng, np.arange(n_frames), n)


def even_indices(candidates: np.ndarray, n: int) -> np.ndarray:
    """Up to n candidates at the centres of n equal runs (deterministic; for validation)."""
    if len(candidates) <= n:
        return candidates
    centres = ((np.arange(n) + 0.5) * len(candidates) / n).astype(np.int64)
    return candidates[centres]


def epoch_batches(rng: np.random.Generator, n_videos: int, batch: int) -> list[np.ndarray]:
    """A random permutation of the videos cut into batches (the last one may be short)."""
    order = rng.permutation(n_videos)
    return [order[i : i + batch] for i in range(0, n_videos, batch)]


@functools.lru_cache(maxsize=8)
def _turned_grids(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(8, 2, H*W): for each 4 * flip + turns, the crop-window row and column of every output
    pixel (flat, row-major in the output), made with the very ops the augmentation names."""
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))  # (2, H, W)
    return torch.stack(
        [
            torch.rot90(grid.flip(-1) if f else grid, k, (1, 2)).reshape(2, h * w)
            for f in (0, 1)
            for k in range(4)
        ]
    ).to(device)


def draw_augment(
    rng: np.random.Generator,
    n: int,
    pad: int,
    flip: bool,
    rot90: bool = False,
    channel_shuffle: bool = False,
) -> dict:
    """The random draws of `augment` for n images, in its order: a plan a loader can carry
    to another process and apply_augment can apply later, with the same result."""
    out = {"pad": pad}
    if not (pad > 0 or rot90 or channel_shuffle):
        if flip:
            out["mirror"] = rng.random(n) < 0.5
        return out
    if pad > 0:
        out["dy"], out["dx"] = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    if flip:
        out["mirror"] = rng.random(n) < 0.5
    if rot90:
        out["turns"] = rng.integers(0, 4, n)
    if channel_shuffle:
        out["order"] = np.stack([rng.permutation(3) for _ in range(n)])
    return out


def augment(
    x: torch.Tensor,
    rng: np.random.Generator,
    pad: int,
    flip: bool,
    rot90: bool = False,
    channel_shuffle: bool = False,
) -> torch.Tensor:
    """apply_augment(x, draw_augment(rng, len(x), ...))."""
    return apply_augment(x, draw_augment(rng, x.shape[0], pad, flip, rot90, channel_shuffle))


def apply_augment(x: torch.Tensor, plan: dict) -> torch.Tensor:
    """Per image: random crop after padding by `pad` px (edge pixels repeated), random
    horizontal flip, random multiple of 90 degrees, random order of the colour channels.

    x: frames (N, 3, H, W) of any dtype, before `prepare`, so the student and the teacher
    can be shown the same augmented frame; the result keeps x's memory layout (NCHW or
    channels-last, as the backbones take it). The training loops pass the uint8 frames (a
    channels-last view) and convert after (dkp.models.unit): moving pixels commutes with
    the conversion, and moving bytes is cheaper than moving floats. rot90 and
    channel_shuffle preserve the labels of the synthetic data (rotation-free shapes and
    tiles, colours random per video), not those of real videos.

    Every step only moves pixels, so they are composed into one source index per output
    value (the crop with edge repeat as clamped coordinates, the flip and the turns as a
    fixed permutation of the output grid) and the batch is read with one gather: the same
    values as padding, cropping, flipping, turning and shuffling image by image, from the
    same random draws in the same order, without a Python loop over the images.
    """
    n, c, h, w = x.shape
    pad = plan["pad"]
    if not (
        "dy" in plan or "turns" in plan or "order" in plan
    ):  # a flip alone (or nothing): one select
        if "mirror" in plan:
            mirror = torch.from_numpy(plan["mirror"]).to(x.device)
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return x
    dev = x.device
    rows, cols = torch.arange(h, device=dev).expand(n, h), torch.arange(w, device=dev).expand(n, w)
    if "dy" in plan:
        dy, dx = torch.from_numpy(plan["dy"]).to(dev), torch.from_numpy(plan["dx"]).to(dev)
        # (N, H): padded row dy + i = image row dy + i - pad
        rows = (dy[:, None] - pad + rows).clamp_(0, h - 1)
        cols = (dx[:, None] - pad + cols).clamp_(0, w - 1)
    combo = torch.zeros(n, dtype=torch.int64)
    if "mirror" in plan:
        combo += 4 * torch.from_numpy(plan["mirror"])
    oh, ow = h, w
    if "turns" in plan:
        turns = torch.from_numpy(plan["turns"])
        combo += turns
        odd = set((turns % 2).tolist())
        if h != w and len(odd) > 1:
            raise RuntimeError(
                f"augment: quarter and half turns of {h}x{w} frames do not stack "
                f"(rot90 needs square frames)"
            )
        if h != w and odd == {1}:
            oh, ow = w, h
    # (N, 2, OH*OW): crop-window row and column of each pixel
    grid = _turned_grids(h, w, dev)[combo.to(dev)]
    src = torch.gather(rows, 1, grid[:, 0]) * w + torch.gather(cols, 1, grid[:, 1])
    if "order" in plan:
        order = torch.from_numpy(plan["order"]).to(dev)
    else:
        order = torch.arange(c, device=dev).expand(n, c)
    if x.permute(
        0, 2, 3, 1
    ).is_contiguous():  # (N, H, W, 3) in memory, as dkp.models.to_unit leaves it
        # channels-last in, channels-last out (the backbones' layout)
        index = src[:, :, None] * c + order[:, None, :]  # (N, OH*OW, C)
        out = torch.gather(
            x.permute(0, 2, 3, 1).reshape(n, h * w * c), 1, index.reshape(n, oh * ow * c)
        )
        return out.view(n, oh, ow, c).permute(0, 3, 1, 2)
    index = order[:, :, None] * (h * w) + src[:, None, :]  # (N, C, OH*OW)
    return torch.gather(x.reshape(n, c * h * w), 1, index.reshape(n, c * oh * ow)).view(
        n, c, oh, ow
    )
