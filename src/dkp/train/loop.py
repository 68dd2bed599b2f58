"""The parts every training phase shares: optimiser and schedule, mixed precision, a resumable
epoch loop, frame accuracy, and the per-epoch CSV log."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import runtime
from ..atomic import write_csv
from . import resume
from .distributed import SINGLE, Group


def optimizer(parameters, cfg: dict, kind: str) -> torch.optim.Optimizer:
    """`sgd` (momentum, L2 weight decay) or `adamw` (decoupled weight decay; momentum unused) over
    the trainable parameters, with cfg's lr and weight_decay."""
    params = [q for q in parameters if q.requires_grad]
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return torch.optim.SGD(
        params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
    )


def warmup_cosine(opt, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 to the peak, then a cosine decay to 0, stepped per batch."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def make_deterministic(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def phase_rng(seed: int) -> np.random.Generator:
    """The generator run_phase hands a fresh phase's epochs (their batches, frames and
    augmentations): a phase's draws can be replayed from its seed alone."""
    return np.random.default_rng(seed)


def run_phase(
    folder: Path, tag: str, epochs: int, seed: int, stateful: dict, epoch_fn, group: Group = SINGLE
) -> list[dict]:
    """Run epochs [last saved, epochs) of one phase; checkpoint after each; return all log rows.

    stateful: name -> object with state_dict()/load_state_dict() (model, optimiser, scheduler).
    The caller seeds (runtime.seed_everything(seed)) before building these objects so they
    start the same whatever ran before; a fresh phase reseeds before its first epoch, a
    resumed one overwrites them from its checkpoint, RNG states included.
    epoch_fn(epoch, rng) -> dict of logged values for that epoch. With several ranks (group), rank 0
    writes the checkpoints and every rank waits for it.
    """
    rng = phase_rng(seed)
    rows: list[dict] = []
    start = 0
    saved = resume.load(folder, tag)
    if saved is None:
        # the first epoch starts from a known state, whatever ran before
        runtime.seed_everything(seed)
    else:
        for name, obj in stateful.items():
            obj.load_state_dict(saved["state"][name])
        resume.set_rng_states(saved["rng"], rng)
        rows, start = saved["rows"], saved["epoch"]
        if start < epochs and not runtime.progress_disabled():
            print(f"{tag}: resuming after epoch {start} from {folder}")
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1, **epoch_fn(epoch, rng)}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if group.main:
            resume.save(
                folder,
                tag,
                {
                    "epoch": epoch + 1,
                    "rows": rows,
                    "rng": resume.rng_states(rng),
                    "state": {n: o.state_dict() for n, o in stateful.items()},
                },
            )
        group.barrier()
    return rows


@torch.no_grad()
def frame_accuracy(
    logits_fn, feats: torch.Tensor, labels: torch.Tensor, batch: int = 1024
) -> float:
    """Accuracy of argmax logits_fn(features) against labels, in batches."""
    if len(labels) == 0:
        return float("nan")
    hits = 0
    for i in range(0, len(labels), batch):
        hits += int(
            (logits_fn(feats[i : i + batch]).argmax(-1).cpu() == labels[i : i + batch]).sum()
        )
    return hits / len(labels)


def write_log(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """results/train/<stage>.csv: one row per epoch, columns in a fixed order."""
    frame = pd.DataFrame(rows)
    for c in columns:
        if c not in frame:
            frame[c] = np.nan
    write_csv(path, frame[columns])
