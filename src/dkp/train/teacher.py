"""`dkp train-teacher`: the heavy network, TSN-style cross-entropy on frames (method.md 5).

Writes models/teacher.pt (dkp.checkpoints) and results/train/teacher.csv (one row per
epoch: loss, lr, training frame accuracy, validation frame accuracy inside the labelled
activity, seconds). Resumable from .dkp-cache/train/teacher/<key>/ after any interruption.
"""
from __future__ import annotations

from pathlib import Path

from .. import checkpoints, framestore, runtime
from ..models import build_backbone, load_pretrained, param_count
from . import checkpointing, classifier, loop
from .data import load_subset

LOG = Path("results") / "train" / "teacher.csv"
SEED_OFFSET = 0  # each phase seeds run.seed + its offset, so phases do not depend on each other


def input_files(p: dict) -> list[Path]:
    """The data files whose content a training stage depends on (hashed into the resume key)."""
    return [framestore.MANIFEST, framestore.CLASSES] + [
        framestore.shard_dir(i) / "index.csv" for i in range(p["frames"]["shards"])]


def reads(p: dict) -> dict:
    """The params this stage reads (the resume key)."""
    return {"run": p["run"], "train_subset": p["data"]["train_subset"], "val_subset": p["data"]["val_subset"],
            "shards": p["frames"]["shards"], "teacher": p["teacher"], "train_teacher": p["train"]["teacher"],
            "augment": p["train"]["augment"], "val_frames": p["train"]["val_frames_per_video"]}


def run(p: dict, args) -> None:
    device = runtime.setup(p)
    loop.make_deterministic(device)
    classes = framestore.load_classes(p)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    val = load_subset(p, p["data"]["val_subset"], len(classes))
    val_frames, val_labels, _ = classifier.validation_frames(val, p["train"]["val_frames_per_video"])
    folder = checkpointing.resume_dir("teacher", reads(p), input_files(p))

    seed = p["run"]["seed"] + SEED_OFFSET
    runtime.seed_everything(seed)
    model = build_backbone(p["teacher"], len(classes))
    if p["teacher"]["pretrained"]:
        print(load_pretrained(model, p["teacher"]["pretrained"], "teacher"))
    model.to(device)
    rows = classifier.train_classifier(model, p["teacher"], p["train"]["teacher"], p["train"]["augment"], train,
                                       val_frames, val_labels, device, folder, "teacher", seed)
    model.eval()
    checkpoints.save(checkpoints.TEACHER, {
        "kind": "teacher", "classes": classes, "num_classes": len(classes),
        "backbones": {"teacher": checkpoints.backbone_entry(model, p["teacher"])}})
    loop.write_log(LOG, rows, classifier.LOG_COLUMNS)
    last = rows[-1]
    print(f"teacher: {p['teacher']['arch']} x{p['teacher']['width']:g} ({param_count(model) / 1e6:.2f} M params), "
          f"{len(train)} training videos, {len(rows)} epochs, validation frame accuracy {last['val_acc']:.3f} "
          f"-> {checkpoints.TEACHER}")
