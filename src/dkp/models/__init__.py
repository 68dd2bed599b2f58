"""Frame backbones (torchvision-compatible names) and ImageNet weights; input preprocessing in
preprocess.py.

Every backbone exposes the same interface:
    embed(x) -> (B, D)   one pooled feature per frame (x: (B, 3, S, S) from `preprocess`)
    classify(f) -> (B, C) its linear classifier (`fc` on ResNet, `classifier.1` on MobileNetV2)
    head -> that nn.Linear;  feature_dim -> D;  forward(x) = classify(embed(x))
Their convolution weights are channels-last, and so are the inputs `to_unit` and
`dkp.train.batches.augment` make from (N, H, W, 3) frames, so no layout is converted.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DkpError
from .mobilenet import MobileNetV2
from .preprocess import autocast, embed_frames, prepare, preprocess, to_unit, unit  # noqa: F401 (the package's API)
from .resnet import LAYOUTS, ResNet

ARCHS = (*LAYOUTS, "mobilenet_v2")


def build_backbone(cfg: dict, num_classes: int) -> nn.Module:
    """A fresh backbone from a params group (`teacher` or `student`): arch, width."""
    arch, width = cfg["arch"], float(cfg["width"])
    if arch == "mobilenet_v2":
        return MobileNetV2(num_classes, width)
    if arch in LAYOUTS:
        return ResNet(arch, num_classes, width)
    raise DkpError(f"unknown backbone {arch!r}; expected one of {list(ARCHS)}")


def load_pretrained(model: nn.Module, path: str, label: str = "backbone") -> str:
    """Load a torchvision ImageNet state dict; the classifier is re-initialised for our classes.

    Returns the one-line report (loaded count, missing and unexpected keys). A tensor
    whose shape differs from ours (e.g. a width other than 1.0) is an error.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, wrong format: one line, not a traceback
        raise DkpError(
            f"{label}.pretrained: cannot read {path!r}: {type(exc).__name__}: {exc}"
        ) from None
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
        raise DkpError(
            f"{label}.pretrained: {len(wrong)} tensors differ in shape from {label}.arch/width, "
            f"e.g. {k}: checkpoint {tuple(state[k].shape)} vs ours {tuple(own[k].shape)}"
        )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head)]
    line = (
        f"{label}.pretrained: loaded {len(state) - len(result.unexpected_keys)} tensors from "
        f"{path}; classifier {model.head_name} re-initialised; missing {len(missing)} "
        f"{missing[:5]}; unexpected {len(result.unexpected_keys)} {result.unexpected_keys[:5]}"
    )
    return line


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
