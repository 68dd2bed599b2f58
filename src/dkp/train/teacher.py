"""`dkp train-teacher`: the heavy network, TSN-style cross-entropy on frames (method.md 5).

Writes models/seed-N/teacher.pt (dkp.checkpoints) and results/train/seed-N/teacher.csv (one
row per epoch: loss, lr, training frame accuracy, frame accuracy inside the labelled
activity on data.tune_subset (train.data.monitor_subset), seconds), for `--seed N`.
Resumable from .dkp-cache/train/teacher/<key>/ after any interruption (the key includes the seed).
"""

from __future__ import annotations

from .. import checkpoints, framestore, layout, runtime
from ..models import param_count
from . import classifier, distributed, loop, resume
from .context import TrainContext, input_files
from .data import load_subset, monitor_subset

SEED_OFFSET = (
    0  # each phase seeds the run's seed + its offset, so phases do not depend on each other
)


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
    folder = resume.resume_dir(p, "teacher", base, input_files(p))

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
