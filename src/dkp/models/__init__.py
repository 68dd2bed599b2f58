"""Frame backbones (torchvision-compatible names), input preprocessing, ImageNet weights.

Every backbone exposes the same interface:
    embed(x) -> (B, D)   one pooled feature per frame (x: (B, 3, S, S) from `preprocess`)
    classify(f) -> (B, C) its linear classifier (`fc` on ResNet, `classifier.1` on MobileNetV2)
    head -> that nn.Linear;  feature_dim -> D;  forward(x) = classify(embed(x))
Their convolution weights are channels-last, and so are the inputs `to_unit` and
`dkp.train.batches.augment` make from (N, H, W, 3) frames, so no layout is converted.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DkpError
from .mobilenet import MobileNetV2
from .resnet import LAYOUTS, ResNet

ARCHS = (*LAYOUTS, "mobilenet_v2")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone(cfg: dict, num_classes: int) -> nn.Module:
    """A fresh backbone from a params group (`teacher` or `student`): arch, width."""
    arch, width = cfg["arch"], float(cfg["width"])
    if arch == "mobilenet_v2":
        return MobileNetV2(num_classes, width)
    if arch in LAYOUTS:
        return ResNet(arch, num_classes, width)
    raise DkpError(f"unknown backbone {arch!r}; expected one of {list(ARCHS)}")


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
        x = x[..., top:top + side, left:left + side]
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    if normalize == "per_image":
        # two-pass standard deviation (unbiased, as Tensor.std) by hand: Tensor.std over the
        # strided H, W of channels-last frames is several times slower
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        std = (centred * centred).sum(dim=(2, 3), keepdim=True).div_(x.shape[-2] * x.shape[-1] - 1).sqrt_()
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
    from .. import runtime

    if runtime.precision(device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def embed_frames(model: nn.Module, frames, size: int, normalize: str, device: torch.device,
                 batch: int = 256) -> torch.Tensor:
    """Pooled features (N, D) float32 on the CPU of uint8 frames (N, H, W, 3), in eval mode.

    The one path from pixels to features: training's frozen-teacher targets and the
    inference API's embed() both go through it, so they agree exactly.
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(frames), batch):
            chunk = torch.from_numpy(np.array(frames[i:i + batch])).to(device)  # a copy: memmaps are read-only
            with autocast(device):
                out.append(model.embed(preprocess(chunk, size, normalize)).float().cpu())
    finally:
        model.train(was_training)
    if not out:
        return torch.zeros(0, model.feature_dim)
    return torch.cat(out)


def load_pretrained(model: nn.Module, path: str, label: str = "backbone") -> str:
    """Load a torchvision ImageNet state dict; the classifier is re-initialised for our classes.

    Returns the one-line report (loaded count, missing and unexpected keys). A tensor
    whose shape differs from ours (e.g. a width other than 1.0) is an error.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, wrong format: one line, not a traceback
        raise DkpError(f"{label}.pretrained: cannot read {path!r}: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DkpError(f"{label}.pretrained: {path!r} holds no state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    head = model.head_name + "."
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise DkpError(f"{label}.pretrained: {len(wrong)} tensors differ in shape from {label}.arch/width, "
                       f"e.g. {k}: checkpoint {tuple(state[k].shape)} vs ours {tuple(own[k].shape)}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head)]
    line = (f"{label}.pretrained: loaded {len(state) - len(result.unexpected_keys)} tensors from {path}; "
            f"classifier {model.head_name} re-initialised; missing {len(missing)} {missing[:5]}; "
            f"unexpected {len(result.unexpected_keys)} {result.unexpected_keys[:5]}")
    return line


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
