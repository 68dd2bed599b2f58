"""`dkp train-student`: the Student baseline, the Student+KD baseline, then the student with DKP,
the gate and KD (method.md 5).

Phase 1 ("plain"): the student backbone alone, trained like the teacher (TSN frames,
cross-entropy, train.plain_student): the "Student alone" baseline, which never sees
the teacher. Phase 2 ("kd"): the Student+KD baseline, a second student trained from scratch
as the first with a distillation term from the frozen teacher added (dkp.train.kd,
train.student_kd). Phase 3 ("dkp"): a copy of the plain student, the DKP module and the gate,
trained with the teacher frozen on the losses of dkp.models.dkp.dkp_losses. Each step draws its
numbers of student and teacher frames log-uniformly over train.student.ns_range / nt_range
(one random frame per equal segment of the whole video), so one checkpoint serves every
sampling configuration; `auto` ranges are the distinct counts the sweep's DKP and DSTE
configurations feed the training and validation videos (resolve_ranges), so DKP is never
evaluated outside the range it was trained on. A step takes train.student.batch_videos
videos, or fewer so that videos x (n_s + n_t) stays within max_frames_per_step. The frozen
teacher runs in the loop (eval mode, no gradients) on
the teacher frames (un-augmented, as at test time) for g_j, and on the student frames
with the student's very augmentation for the targets T(x_i); with a few epochs the loop
shows it fewer frames than caching its features of every training frame would take. Phase 3's
step and loop live in dkp.train.dkp_phase.

For `--seed N`, with the teacher of seed N, writes models/seed-N/student.pt and
results/train/seed-N/student.csv (rows of the three phases; `val_acc` is frame accuracy inside
the labelled activity on data.tune_subset (train.data.monitor_subset): of the plain student in
phase 1, of the Student+KD network in phase 2, of DSTE's p_i with the teacher frames adaptive
sampling of n_t = the geometric mean of nt_range feeds in phase 3; `val_acc_kd` is the
DKP-trained student's own classifier C_s).
"""

from __future__ import annotations

import numpy as np

from .. import checkpoints, framestore, layout, runtime, sampling
from .. import configs as configs_mod
from ..errors import DkpError
from ..models import build_backbone
from ..models.dkp import DKP
from . import classifier, distributed, kd, loop, resume
from .context import TrainContext
from .data import VideoSet, load_subset, monitor_subset
from .dkp_phase import TERMS, dkp_validation, train_dkp
from .teacher import input_files, run_reads

# kd shares plain's seed: the same initial weights, frames and augmentations, so the two
# baselines differ by the distillation term alone
SEED_OFFSET = {"plain": 1, "kd": 1, "dkp": 2}
LOG_COLUMNS = [
    "phase",
    "epoch",
    "loss",
    *TERMS,
    "lr",
    "train_acc",
    "val_acc",
    "val_acc_kd",
    "seconds",
]


def reads(p: dict) -> dict:
    return {
        "run": run_reads(p),
        "train_subset": p["data"]["train_subset"],
        "val_subset": p["data"]["val_subset"],
        "monitor_subset": monitor_subset(p),
        "shards": p["frames"]["shards"],
        "student": p["student"],
        "dkp": p["dkp"],
        "train_student": p["train"]["student"],
        "plain": p["train"]["plain_student"],
        "student_kd": p["train"]["student_kd"],
        "sweep": {
            "s1": p["sweep"]["s1"],
            "s2": p["sweep"]["s2"],
            "baselines": p["sweep"]["baselines"],
        },
        "augment": p["train"]["augment"],
        "val_frames": p["train"]["val_frames_per_video"],
    }


def resolve_ranges(p: dict, *sets: VideoSet) -> tuple[tuple[int, int], tuple[int, int]]:
    """(ns_range, nt_range) of train.student, `auto` replaced by dkp.sampling.count_range over the
    DKP and DSTE configurations of the sweep and the videos of `sets`."""
    cfg = p["train"]["student"]
    if cfg["ns_range"] != "auto" and cfg["nt_range"] != "auto":
        return tuple(cfg["ns_range"]), tuple(cfg["nt_range"])
    dkp_configs = [c for c in configs_mod.build(p) if c.method in ("dkp", "dste")]
    times = [t for vs in sets for t in vs.times]
    durations = np.concatenate([vs.durations for vs in sets])
    auto_ns, auto_nt = sampling.count_range(dkp_configs, times, durations)
    return (
        auto_ns if cfg["ns_range"] == "auto" else tuple(cfg["ns_range"]),
        auto_nt if cfg["nt_range"] == "auto" else tuple(cfg["nt_range"]),
    )


def run(p: dict, args) -> None:
    base = args.seed
    t_path, s_path = layout.teacher_checkpoint(base), layout.student_checkpoint(base)
    device = runtime.setup(p, base)
    group, device = distributed.init(device)
    loop.make_deterministic(device)
    classes = framestore.load_classes(p)
    t_ckpt = checkpoints.read(t_path, "teacher")
    if list(t_ckpt["classes"]) != classes:
        raise DkpError(
            f"{t_path} was trained on other classes than data/classes.txt: "
            f"rerun `dkp train-teacher --seed {base}`"
        )
    t_entry = t_ckpt["backbones"]["teacher"]
    teacher = checkpoints.load_backbone(t_entry, len(classes)).to(device).requires_grad_(False)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    # durations only: the range the sweep evaluates
    val = load_subset(p, p["data"]["val_subset"], len(classes))
    monitor = (
        val
        if monitor_subset(p) == p["data"]["val_subset"]
        else load_subset(p, monitor_subset(p), len(classes))
    )
    val_frames, val_labels, val_pairs = classifier.validation_frames(
        monitor, p["train"]["val_frames_per_video"]
    )
    ranges = resolve_ranges(p, train, val)
    print(
        f"student: DKP trained on n_s {ranges[0][0]}-{ranges[0][1]}, n_t "
        f"{ranges[1][0]}-{ranges[1][1]} frames per video"
    )
    folder = resume.resume_dir("student", base, reads(p), input_files(p) + [t_path])

    # Phase 1: the Student baseline, cross-entropy alone
    ctx = TrainContext(train, val_frames, val_labels, device, folder, group)
    plain, plain_rows = classifier.fit(
        p["student"],
        p["train"]["plain_student"],
        p["train"]["augment"],
        p["train"]["loader"],
        ctx,
        role="student",
        tag="plain",
        seed=base + SEED_OFFSET["plain"],
        num_classes=len(classes),
    )

    # Phase 2: the Student+KD baseline, from scratch, teacher frozen
    kd_net, kd_rows = kd.fit(p, teacher, t_entry, ctx, base + SEED_OFFSET["kd"], len(classes))

    # Phase 3: DKP + gate + KD from the plain student, teacher frozen
    runtime.seed_everything(base + SEED_OFFSET["dkp"])
    student = build_backbone(p["student"], len(classes))
    student.load_state_dict(plain.state_dict())
    dkp = DKP(
        student.feature_dim, teacher.feature_dim, len(classes), **checkpoints.dkp_config(p["dkp"])
    )
    dkp.init_heads(teacher.head, student.head)
    student.to(device)
    dkp.to(device)
    val_eval = (
        dkp_validation(p, student, dkp, teacher, t_entry, monitor, val_pairs, ctx, ranges[1])
        if group.main
        else dict
    )
    dkp_rows = train_dkp(
        p, student, dkp, teacher, t_entry, ctx, val_eval, base + SEED_OFFSET["dkp"], ranges
    )
    distributed.close(group)
    if not group.main:
        return

    student.eval()
    dkp.eval()
    checkpoints.save(
        s_path,
        {
            "kind": "student",
            "classes": classes,
            "num_classes": len(classes),
            "teacher_sha256": checkpoints.file_digest(t_path),
            "train_ranges": {"ns": list(ranges[0]), "nt": list(ranges[1])},
            "backbones": {
                "student": checkpoints.backbone_entry(student, p["student"]),
                "student_plain": checkpoints.backbone_entry(plain, p["student"]),
                "student_kd": checkpoints.backbone_entry(kd_net, p["student"]),
            },
            "dkp": {
                **p["dkp"],
                "ds": student.feature_dim,
                "dt": teacher.feature_dim,
                "state_dict": checkpoints.cpu_state(dkp),
            },
        },
    )
    rows = [{"phase": "plain", **r} for r in plain_rows]
    rows += [{"phase": "kd", **r, "epoch": len(rows) + r["epoch"]} for r in kd_rows]
    rows += [{**r, "epoch": len(rows) + r["epoch"]} for r in dkp_rows]
    loop.write_log(layout.train_log("student", base), rows, LOG_COLUMNS)
    print(
        f"student: plain {len(plain_rows)} epochs (frame accuracy on {monitor_subset(p)} "
        f"{plain_rows[-1]['val_acc']:.3f}), Student+KD {len(kd_rows)} epochs "
        f"({kd_rows[-1]['val_acc']:.3f}), DKP {len(dkp_rows)} epochs (DSTE "
        f"{dkp_rows[-1]['val_acc']:.3f}, C_s {dkp_rows[-1]['val_acc_kd']:.3f}) -> {s_path}"
        + (f" ({group.world} ranks)" if group.world > 1 else "")
    )
