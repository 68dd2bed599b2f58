"""What every training phase of a stage shares: its videos, the fixed monitor frames, the
device, the resume folder and the ranks; and the data files both training stages read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import framestore, layout
from .data import PairFrames, VideoSet
from .distributed import SINGLE, Group


@dataclass(frozen=True)
class TrainContext:
    """train: the training videos; val_frames (N, H, W, 3) uint8, read when sliced (PairFrames), and
    val_labels (N,): the fixed frames the per-epoch log scores (classifier.validation_frames);
    folder: the stage's resume
    folder (resume.resume_dir), one subfolder per phase tag; group: the ranks of a torchrun."""

    train: VideoSet
    val_frames: PairFrames
    val_labels: np.ndarray
    device: torch.device
    folder: Path
    group: Group = SINGLE


def input_files(p: dict) -> list[Path]:
    """The data files whose content a training stage depends on (hashed into the resume key)."""
    return [layout.MANIFEST, layout.CLASSES] + [
        framestore.shard_dir(i) / "index.csv" for i in range(p["frames"]["shards"])
    ]
