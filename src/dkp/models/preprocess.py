"""Frames to network inputs: uint8 -> unit range, resize and crop, standardisation, mixed
precision, and the one path from pixels to pooled features (embed_frames)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import runtime
from ..errors import DkpError

# Frames per forward pass of a network in eval mode. A frame's features do not depend on the
# other frames of its pass (bitwise on the CPUs measured, save for a pass of one frame, whose
# kernel rounds differently), so this sets speed only: 128 ran 8 % (teacher) to 15-30 % (students)
# faster than 256 on the 2-core VM, whose caches a 256-frame pass overflows (bench/README).
FORWARD_BATCH = 128

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> float32 (N, 3, H, W) in [0, 1]."""
    return unit(frames.permute(0, 3, 1, 2))


def unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 values -> float32 in [0, 1], shape and layout kept."""
    return x.float().div_(255.0)


def prepare(x: torch.Tensor, size: int, normalize: str) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] -> (N, 3, size, size): centre square crop, resize, standardise.

    normalize: `per_image` subtracts each image's per-channel mean and divides by its
    standard deviation (the synthetic data need it: without it training sits on the
    initial plateau); `imagenet` uses the ImageNet statistics (for pretrained weights).
    """
    h, w = x.shape[-2:]
    side = min(h, w)
    if h != w:
        top, left = (h - side) // 2, (w - side) // 2
        x = x[..., top : top + side, left : left + side]
    if side != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size
        )
    if normalize == "per_image":
        # two-pass standard deviation (unbiased, as Tensor.std) by hand: Tensor.std over the
        # strided H, W of channels-last frames is several times slower
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        std = (
            (centred * centred)
            .sum(dim=(2, 3), keepdim=True)
            .div_(x.shape[-2] * x.shape[-1] - 1)
            .sqrt_()
        )
        return centred / (std + 1e-3)  # eps: flat frames (fades, blank backgrounds) stay finite
    if normalize == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std
    raise DkpError(f"unknown normalize {normalize!r}; expected per_image or imagenet")


def preprocess(frames: torch.Tensor, size: int, normalize: str) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB frames -> network input (N, 3, size, size); see `prepare`."""
    return prepare(to_unit(frames), size, normalize)


def autocast(device: torch.device):
    """bfloat16 autocast where run.precision resolves to bf16 on `device` (dkp.runtime.precision;
    auto until runtime.setup applies run.precision), else full precision. Training, feature
    caching and the sweep all run their networks under it."""
    if runtime.precision(device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def chunk_bounds(n: int, batch: int) -> list[tuple[int, int]]:
    """(start, stop) of ceil(n / batch) passes over n frames, their sizes within one of each
    other: no frame goes through alone unless it is the only one."""
    k = -(-n // batch)
    edges = [n * i // k for i in range(k + 1)] if k else [0]
    return list(zip(edges[:-1], edges[1:]))


def embed_chunks(model: nn.Module, x: torch.Tensor, batch: int = FORWARD_BATCH) -> torch.Tensor:
    """model.embed of network inputs x (N, 3, S, S), at most `batch` frames a pass (eval mode)."""
    if len(x) <= batch:
        return model.embed(x)
    return torch.cat([model.embed(x[a:b]) for a, b in chunk_bounds(len(x), batch)])


@torch.no_grad()
def embed_frames(
    model: nn.Module,
    frames,
    size: int,
    normalize: str,
    device: torch.device,
    batch: int = FORWARD_BATCH,
) -> torch.Tensor:
    """Pooled features (N, D) float32 on the CPU of uint8 frames (N, H, W, 3), in eval mode.

    The one path from pixels to features: training's frozen-teacher targets and the
    inference API's embed() both go through it, so they agree exactly.
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for a, b in chunk_bounds(len(frames), batch):
            # a copy: memmaps are read-only
            chunk = torch.from_numpy(np.array(frames[a:b])).to(device)
            with autocast(device):
                out.append(model.embed(preprocess(chunk, size, normalize)).float().cpu())
    finally:
        model.train(was_training)
    if not out:
        return torch.zeros(0, model.feature_dim)
    return torch.cat(out)
