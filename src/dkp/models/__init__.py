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

from pathlib import Path

import torch
from torch import nn

from ..errors import DkpError
from .mobilenet import MobileNetV2
from .preprocess import (  # noqa: F401 (the package's API)
    FORWARD_BATCH,
    autocast,
    embed_chunks,
    embed_frames,
    prepare,
    preprocess,
    to_unit,
    unit,
)
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


# BatchNorm step counters: torchvision's ImageNet files predate them, and with a set momentum
# (ours) they change nothing, so a file without them matches.
COUNTERS = ".num_batches_tracked"


def read_state_dict(path: str, label: str) -> dict:
    """The state dict in a .pth file (torchvision's plain dict, or one under "state_dict"; a
    "module." prefix from DataParallel removed). DkpError with one line when it cannot be read."""
    where = Path(path)
    if where.is_file() and where.stat().st_size == 0:
        raise DkpError(f"{label}.pretrained: {path!r} is empty (0 bytes): download it again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, wrong format: one line, not a traceback
        raise DkpError(
            f"{label}.pretrained: cannot read {path!r}: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DkpError(f"{label}.pretrained: {path!r} holds no state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def match_pretrained(model: nn.Module, state: dict, path: str, label: str) -> dict:
    """The tensors of `state` that `model` loads: every one but its classifier's
    (`model.head_name`), which is re-initialised for our classes, so a file may lack it or hold
    another number of classes (the head-only mismatch). Any other key missing from the file or
    unknown to the model, or a shape that differs, is a DkpError with one line: the file is of
    another architecture or width."""
    head = model.head_name + "."
    trunk = {k: v for k, v in state.items() if not k.startswith(head)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    needed = [k for k in own if not k.endswith(COUNTERS)]
    missing = [k for k in needed if k not in trunk]
    unexpected = [k for k in trunk if k not in own]
    arch = f"{label}.arch/width"
    if missing or unexpected:
        parts = [
            f"{len(found)} {what} (e.g. {found[0]!r})"
            for what, found in (("missing", missing), ("unexpected", unexpected))
            if found
        ]
        raise DkpError(
            f"{label}.pretrained: {path!r} does not match {arch}: {' and '.join(parts)} of "
            f"{len(needed)} trunk tensors; only the classifier {model.head_name}.* may differ"
        )
    wrong = [k for k, v in trunk.items() if tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise DkpError(
            f"{label}.pretrained: {len(wrong)} tensors differ in shape from {arch}, "
            f"e.g. {k}: checkpoint {tuple(trunk[k].shape)} vs ours {tuple(own[k].shape)}"
        )
    return trunk


def check_pretrained(net: dict, label: str) -> str:
    """Read a params group's `pretrained` file and match it against the group's arch and width
    (match_pretrained) without training anything: what `dkp validate-params` runs, so a wrong
    file is refused before any stage does work. Returns a one-line summary."""
    path = net["pretrained"]
    trunk = match_pretrained(build_backbone(net, 2), read_state_dict(path, label), path, label)
    return f"{label}.pretrained: {len(trunk)} tensors match {net['arch']} x{float(net['width']):g}"


def load_pretrained(model: nn.Module, path: str, label: str = "backbone") -> str:
    """Load a torchvision ImageNet state dict (match_pretrained); the classifier is re-initialised
    for our classes. Returns the one-line report."""
    trunk = match_pretrained(model, read_state_dict(path, label), path, label)
    result = model.load_state_dict(trunk, strict=False)
    missing = [
        k
        for k in result.missing_keys
        if not k.startswith(model.head_name + ".") and not k.endswith(COUNTERS)
    ]
    return (
        f"{label}.pretrained: loaded {len(trunk)} tensors from {path}; classifier "
        f"{model.head_name} re-initialised; missing {len(missing)} {missing[:5]}; unexpected "
        f"{len(result.unexpected_keys)} {result.unexpected_keys[:5]}"
    )


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
