"""Training-time frame sampling and augmentation: pure functions of a numpy Generator.

All randomness of a training run flows through one np.random.Generator (saved in
every resume checkpoint) plus torch's global generator (dropout).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def tsn_indices(rng: np.random.Generator, candidates: np.ndarray, segments: int) -> np.ndarray:
    """TSN sampling: split the candidate frames into `segments` equal runs, one random frame from each.

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


def centre_indices(n_frames: int, n: int) -> np.ndarray:
    """The frames at the centres of n equal segments (adaptive test-time sampling, by index)."""
    return np.minimum(((np.arange(n) + 0.5) * n_frames / n).astype(np.int64), n_frames - 1)


def epoch_batches(rng: np.random.Generator, n_videos: int, batch: int) -> list[np.ndarray]:
    """A random permutation of the videos cut into batches (the last one may be short)."""
    order = rng.permutation(n_videos)
    return [order[i:i + batch] for i in range(0, n_videos, batch)]


def augment(x: torch.Tensor, rng: np.random.Generator, pad: int, flip: bool,
            rot90: bool = False, channel_shuffle: bool = False) -> torch.Tensor:
    """Per image: random crop after padding by `pad` px (edge pixels repeated), random
    horizontal flip, random multiple of 90 degrees, random order of the colour channels.

    x: frames as float (N, 3, H, W) in [0, 1] (dkp.models.to_unit), before `prepare`, so
    the student and the teacher can be shown the same augmented frame. rot90 and
    channel_shuffle preserve the labels of the synthetic data (rotation-free shapes and
    tiles, colours random per video), not those of real videos.
    """
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        dy = rng.integers(0, 2 * pad + 1, n)
        dx = rng.integers(0, 2 * pad + 1, n)
        x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if flip:
        mirror = torch.from_numpy(rng.random(n) < 0.5).to(x.device)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    if rot90:
        turns = rng.integers(0, 4, n)
        x = torch.stack([torch.rot90(x[i], int(turns[i]), (1, 2)) for i in range(n)])
    if channel_shuffle:
        order = torch.from_numpy(np.stack([rng.permutation(3) for _ in range(n)])).to(x.device)
        x = torch.gather(x, 1, order[:, :, None, None].expand_as(x))
    return x
