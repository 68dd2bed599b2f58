"""`dkp train-teacher`: the heavy network, TSN-style cross-entropy on frames (method.md 5).

Writes models/seed-N/teacher.pt (dkp.checkpoints) and results/train/seed-N/teacher.csv (one
row per epoch: loss, lr, training frame accuracy, frame accuracy inside the labelled
activity on data.tune_subset (train.data.monitor_subset), seconds), for `--seed N`.
Resumable from .dkp-cache/train/teacher/<key>/ after any interruption (the key includes the seed).
"""

from __future__ import annotations

from pathlib import Path

from .. import checkpoints, framestore, layout, runtime
from ..models import param_count
from . import classifier, distributed, loop, resume
from .context import TrainContext
from .data import load_subset, monitor_subset

SEED_OFFSET = (
    0  # each phase seeds the run's seed + its offset, so phases do not depend on each other
)


def input_files(p: dict) -> list[Path]:
    """The data files whose content a training stage depends on (hashed into the resume key)."""
    return [layout.MANIFEST, layout.CLASSES] + [
        framestore.shard_dir(i) / "index.csv" for i in range(p["frames"]["shards"])
    ]


def run_reads(p: dict) -> dict:
    """The run settings a training stage reads besides its seed (not run.seeds: adding a seed
    leaves the other seeds' resume folders valid), with the precision run.precision resolves
    to on this machine (auto may differ between machines)."""
    device = runtime.resolve_device(p["run"]["device"])
    return {
        "threads": p["run"]["threads"],
        "device": p["run"]["device"],
        "precision": runtime.resolve_precision(p["run"]["precision"], device),
    }


def reads(p: dict) -> dict:
    """The params this stage reads (with the seed, the resume key)."""
    return {
        "run": run_reads(p),
        "train_subset": p["data"]["train_subset"],
        "monitor_subset": monitor_subset(p),
        "shards": p["frames"]["shards"],
        "teacher": p["teacher"],
        "train_teacher": p["train"]["teacher"],
        "augment": p["train"]["augment"],
        "val_frames": p["train"]["val_frames_per_video"],
    }


def run(p: dict, args) -> None:
    base = args.seed
    device = runtime.setup(p, base)
    group, device = distributed.init(device)
    loop.make_deterministic(device)
    classes = framestore.load_classes(p)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    monitor = load_subset(p, monitor_subset(p), len(classes))
    val_frames, val_labels, _ = classifier.validation_frames(
        monitor, p["train"]["val_frames_per_video"]
    )
    folder = resume.resume_dir("teacher", base, reads(p), input_files(p))

    ctx = TrainContext(train, val_frames, val_labels, device, folder, group)
    model, rows = classifier.fit(
        p["teacher"],
        p["train"]["teacher"],
        p["train"]["augment"],
        p["train"]["loader"],
        ctx,
        role="teacher",
        tag="teacher",
        seed=base + SEED_OFFSET,
        num_classes=len(classes),
    )
    if group.main:  # rank 0 writes the checkpoint and the log
        checkpoints.save(
            layout.teacher_checkpoint(base),
            {
                "kind": "teacher",
                "classes": classes,
                "num_classes": len(classes),
                "backbones": {"teacher": checkpoints.backbone_entry(model, p["teacher"])},
            },
        )
        loop.write_log(layout.train_log("teacher", base), rows, classifier.LOG_COLUMNS)
        last = rows[-1]
        print(
            f"teacher: {p['teacher']['arch']} x{p['teacher']['width']:g} "
            f"({param_count(model) / 1e6:.2f} M params), {len(train)} training videos, {len(rows)} "
            f"epochs, frame accuracy on {monitor_subset(p)} {last['val_acc']:.3f} -> "
            f"{layout.teacher_checkpoint(base)}"
            + (f" ({group.world} ranks)" if group.world > 1 else "")
        )
    distributed.close(group)
