"""models/seed-N/teacher.pt and student.pt (dkp.layout): everything needed to rebuild the trained
modules.

A checkpoint is a dict:
  format: FORMAT; kind: "teacher" | "student"; classes: [names], num_classes;
  backbones: {name: {arch, width, input_size, normalize, state_dict}}
      teacher.pt: "teacher";  student.pt: "student" (trained with DKP + KD),
      "student_plain" (CE only, never saw the teacher: the Student baseline) and
      "student_kd" (CE + KD from the teacher: the Student+KD baseline);
  dkp (student.pt only): {heads, dim, pos_encoding, pos_scale, dropout, teacher_frame_weight,
      ds, dt, state_dict}; teacher_sha256 (student.pt only): digest of the teacher.pt it used.
Tensors are on the CPU; files are written atomically and byte-identical for identical content.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_path
from .errors import DkpError
from .models import build_backbone
from .models.dkp import DKP

FORMAT = 1
BACKBONE_KEYS = ("arch", "width", "input_size", "normalize")
DKP_KEYS = ("heads", "dim", "pos_encoding", "pos_scale", "dropout", "teacher_frame_weight")


def file_digest(path: str | Path) -> str:
    """sha256 of a file (ties student.pt to the teacher.pt it was trained with)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def backbone_entry(model: nn.Module, net: dict) -> dict:
    """net: a backbone params group (teacher or student)."""
    return {**{k: net[k] for k in BACKBONE_KEYS}, "state_dict": cpu_state(model)}


def save(path: str | Path, payload: dict) -> None:
    # Through a buffer: torch.save names the zip's root folder after the file, and the
    # temporary name is random, so saving to it directly would change the bytes run to run.
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read(path: str | Path, kind: str) -> dict:
    path = Path(path)
    if not path.exists():
        stage = "train-teacher" if kind == "teacher" else "train-student"
        raise DkpError(f"{path} not found: run `dkp {stage}` for its seed first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DkpError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind or ckpt.get("format") != FORMAT:
        raise DkpError(
            f"{path}: expected a dkp {kind} checkpoint (format {FORMAT}), "
            f"found {ckpt.get('kind') if isinstance(ckpt, dict) else type(ckpt).__name__}"
        )
    return ckpt


def load_backbone(entry: dict, num_classes: int) -> nn.Module:
    """The backbone of a checkpoint entry, weights loaded, in eval mode."""
    model = build_backbone(entry, num_classes)
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def dkp_config(entry: dict) -> dict:
    """The DKP module's settings (its keyword arguments) from a checkpoint entry or params' dkp."""
    return {k: entry[k] for k in DKP_KEYS}


def build_dkp(entry: dict, num_classes: int) -> nn.Module:
    module = DKP(entry["ds"], entry["dt"], num_classes, **dkp_config(entry))
    module.load_state_dict(entry["state_dict"])
    return module.eval()
