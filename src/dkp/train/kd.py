"""Phase 2 of `dkp train-student`: the Student+KD baseline (method.md 5 and 6).

A fresh student backbone trained exactly as the Student baseline (train.plain_student: recipe,
epochs, seed, frames and augmentations), with lambda_kd tau^2 KL(softmax(teacher / tau) ||
softmax(student / tau)) added to its cross-entropy (train.student_kd). With lambda_kd 0 it is the
Student baseline, bit for bit: the two differ by the distillation term alone.

The teacher's logits come from one of two sources (train.student_kd.targets):
- cached: the frozen teacher classifies every frame the phase draws (its epochs' draws replayed
  from its seed: classifier.drawn_rows), un-augmented, once, before the first epoch; a step looks
  its frames up. Frames the phase never draws are never classified.
  The synthetic augmentations (crop, flip, quarter turns, channel order) keep the label, so the
  un-augmented frame's soft target stands for every augmented view of it.
- online: the teacher classifies each step's augmented frames, as the student sees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DkpError
from ..models import autocast, embed_frames, prepare, unit
from . import classifier
from .context import TrainContext
from .data import VideoSet
from .distributed import Group

TARGET_CHUNK = 4096  # frames read and classified at a time while caching (fixed: same bytes)


@dataclass(frozen=True)
class Distill:
    """What classifier.train_classifier needs to distil: targets(rows, x) -> (N, C) teacher logits
    of a step's frames, given their rows in the flat per-frame order of the training VideoSet and
    the augmented uint8 frames x (N, 3, H, W) on the device."""

    tau: float
    weight: float
    targets: Callable[[np.ndarray, torch.Tensor], torch.Tensor]


def candidate_rows(train: VideoSet, within_activity: bool) -> np.ndarray:
    """Rows (flat per-frame order) of every frame the TSN sampling of train_classifier can draw."""
    candidates = classifier.tsn_candidates(train, within_activity)
    return np.concatenate([train.offsets[i] + c for i, c in enumerate(candidates)]).astype(np.int64)


@torch.no_grad()
def teacher_logits(
    teacher, t_entry: dict, train: VideoSet, rows: np.ndarray, device, group: Group
) -> torch.Tensor:
    """(len(rows), C) float32 CPU logits of the frozen teacher on the un-augmented frames at
    `rows`, in chunks of TARGET_CHUNK; with several ranks each classifies its share of the chunks
    and the shares are summed (each row is computed by one rank: the sum is exact)."""
    video = np.searchsorted(train.offsets, rows, side="right") - 1
    pairs = list(zip(video.tolist(), (rows - train.offsets[video]).tolist()))
    starts = range(0, len(pairs), TARGET_CHUNK)
    mine = set(list(starts)[group.share(len(starts))])
    out = torch.zeros(len(pairs), teacher.head.out_features)
    for a in starts:
        if a not in mine:
            continue
        frames = train.gather(pairs[a : a + TARGET_CHUNK])
        feats = embed_frames(teacher, frames, t_entry["input_size"], t_entry["normalize"], device)
        with autocast(device):
            out[a : a + len(frames)] = teacher.classify(feats.to(device)).float().cpu()
    return group.sum_tensor(out, device)


def cached(teacher, t_entry: dict, train: VideoSet, rows: np.ndarray, device, group: Group):
    """targets() of `cached` mode over the frames at `rows` (classifier.drawn_rows: those the
    phase draws): the table is computed at the first step (a resumed, finished phase never pays
    for it)."""
    table: dict[str, object] = {}

    def targets(step_rows: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        if not table:
            t0 = time.perf_counter()
            where = np.full(train.n_frames_total, -1, np.int64)
            where[rows] = np.arange(len(rows))
            table.update(
                where=where, logits=teacher_logits(teacher, t_entry, train, rows, device, group)
            )
            if group.main:
                print(
                    f"student: Student+KD: teacher targets of the {len(rows)} training frames "
                    f"the phase draws in {time.perf_counter() - t0:.1f} s"
                )
        at = table["where"][step_rows]
        if (at < 0).any():
            raise DkpError("Student+KD: a step drew a frame outside the cached candidate frames")
        return table["logits"][torch.from_numpy(at)].to(device)

    return targets


def online(teacher, t_entry: dict, device):
    """targets() of `online` mode: the teacher on the step's augmented frames."""

    @torch.no_grad()
    def targets(rows: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        with autocast(device):
            xt = prepare(unit(x), t_entry["input_size"], t_entry["normalize"])
            return teacher.classify(teacher.embed(xt)).float()

    return targets


def fit(
    p: dict,
    teacher,
    t_entry: dict,
    ctx: TrainContext,
    seed: int,
    num_classes: int,
    targets: Callable[[np.ndarray, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.nn.Module, list[dict]]:
    """Train the Student+KD baseline; returns it in eval mode with its log rows (tag "kd").

    targets: the teacher's logits to distil (as Distill.targets), or None for those
    train.student_kd.targets names; a caller that trains several times on one table passes it."""
    cfg, plain = p["train"]["student_kd"], p["train"]["plain_student"]
    teacher.eval()
    if targets is None and cfg["targets"] == "cached":
        rows = classifier.drawn_rows(ctx.train, plain, p["train"]["augment"], seed)
        targets = cached(teacher, t_entry, ctx.train, rows, ctx.device, ctx.group)
    elif targets is None:
        targets = online(teacher, t_entry, ctx.device)
    return classifier.fit(
        p["student"],
        plain,
        p["train"]["augment"],
        p["train"]["loader"],
        ctx,
        role="student",
        tag="kd",
        seed=seed,
        num_classes=num_classes,
        distill=Distill(cfg["tau"], cfg["lambda_kd"], targets),
    )
