"""`dkp train-student`: the Student baseline, the Student+KD baseline, then the student with DKP,
the gate and KD (method.md 5).

Phase 1 ("plain"): the student backbone alone, trained like the teacher (TSN frames,
cross-entropy, train.plain_student): the "Student alone" baseline, which never sees
the teacher. Phase 2 ("kd"): the Student+KD baseline, a second student trained from scratch
as the first with a distillation term from the frozen teacher added (dkp.train.kd,
train.student_kd). Phase 3 ("dkp"): a copy of the plain student, the DKP module and the gate,
trained with the teacher frozen on the losses of dkp.models.dkp.dkp_losses. Each step draws
one of the sweep's DKP/DSTE configurations (dkp_pairs) and feeds each video of the batch the
(n_s, n_t) that configuration asks of it, distinct frames as at test time
(dkp.train.dkp_phase.plan_epoch), so DKP trains on the pairs it is evaluated on and one
checkpoint serves every configuration. A step takes train.student.batch_videos videos, or
fewer so that the sum of their n_s + n_t stays within max_frames_per_step. The frozen teacher
runs in the loop (eval mode, no gradients) on the teacher frames (un-augmented, as at test
time) for g_j, and on the student frames with the student's very augmentation for the targets
T(x_i). Phase 3's step and loop live in dkp.train.dkp_phase.

For `--seed N`, with the teacher of seed N, writes models/seed-N/student.pt and
results/train/seed-N/student.csv (rows of the three phases; `val_acc` is frame accuracy inside
the labelled activity on data.tune_subset (train.data.monitor_subset): of the plain student in
phase 1, of the Student+KD network in phase 2, of DSTE's p_i with the teacher frames
sweep.s3_config feeds in phase 3; `val_acc_kd` is the DKP-trained student's own classifier
C_s).
"""

from __future__ import annotations

from .. import checkpoints, framestore, layout, runtime, sampling
from .. import configs as configs_mod
from ..errors import DkpError
from ..models import build_backbone
from ..models.dkp import DKP
from . import classifier, distributed, kd, loop, resume
from .context import TrainContext, input_files
from .data import load_subset, monitor_subset
from .dkp_phase import TERMS, dkp_validation, train_dkp

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


def dkp_pairs(p: dict) -> list:
    """The sweep's DKP and DSTE configurations (dkp.configs), each (strategy, counts) once: what
    the DKP phase draws its steps' frame counts from."""
    seen, out = set(), []
    for c in configs_mod.build(p):
        key = (c.strategy, c.ns, c.nt, c.rt, c.ratio)
        if c.method in ("dkp", "dste") and key not in seen:
            seen.add(key)
            out.append(c)
    return out


def frozen_teacher(t_path, classes: list[str], seed: int, device):
    """(the teacher of models/seed-N/teacher.pt on `device`, frozen; its checkpoint entry);
    one line when it was trained on other classes."""
    t_ckpt = checkpoints.read(t_path, "teacher")
    if list(t_ckpt["classes"]) != classes:
        raise DkpError(
            f"{t_path} was trained on other classes than data/classes.txt: "
            f"rerun `dkp train-teacher --seed {seed}`"
        )
    t_entry = t_ckpt["backbones"]["teacher"]
    teacher = checkpoints.load_backbone(t_entry, len(classes)).to(device).requires_grad_(False)
    return teacher, t_entry


def dkp_start(p: dict, plain, teacher, num_classes: int, device):
    """(a copy of the plain student, a new DKP module with its heads initialised from the two
    classifiers), on `device`: where phase 3 starts."""
    student = build_backbone(p["student"], num_classes)
    student.load_state_dict(plain.state_dict())
    dkp = DKP(
        student.feature_dim, teacher.feature_dim, num_classes, **checkpoints.dkp_config(p["dkp"])
    )
    dkp.init_heads(teacher.head, student.head)
    return student.to(device), dkp.to(device)


def save(p: dict, s_path, t_path, classes, nets: dict, dkp, dt: int, pairs, train) -> None:
    """models/seed-N/student.pt: the three student backbones, the DKP module, the teacher's digest
    and the configurations DKP was trained on with the counts they asked."""
    (ns_lo, ns_hi), (nt_lo, nt_hi) = sampling.count_span(pairs, train.durations)
    checkpoints.save(
        s_path,
        {
            "kind": "student",
            "classes": classes,
            "num_classes": len(classes),
            "teacher_sha256": checkpoints.file_digest(t_path),
            "train_pairs": {
                "configurations": [c.name for c in pairs],
                "ns": [ns_lo, ns_hi],
                "nt": [nt_lo, nt_hi],
            },
            "backbones": {
                name: checkpoints.backbone_entry(net, p["student"]) for name, net in nets.items()
            },
            "dkp": {
                **p["dkp"],
                "ds": nets["student"].feature_dim,
                "dt": dt,
                "state_dict": checkpoints.cpu_state(dkp),
            },
        },
    )


def run(p: dict, args) -> None:
    base = args.seed
    t_path, s_path = layout.teacher_checkpoint(base), layout.student_checkpoint(base)
    device = runtime.setup(p, base)
    group, device = distributed.init(device)
    loop.make_deterministic(device)
    classes = framestore.load_classes(p)
    teacher, t_entry = frozen_teacher(t_path, classes, base, device)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    monitor = load_subset(p, monitor_subset(p), len(classes))
    val_frames, val_labels, val_pairs = classifier.validation_frames(
        monitor, p["train"]["val_frames_per_video"]
    )
    pairs = dkp_pairs(p)
    (ns_lo, ns_hi), (nt_lo, nt_hi) = sampling.count_span(pairs, train.durations)
    print(
        f"student: DKP trained on the sweep's {len(pairs)} DKP/DSTE configurations over the "
        f"{len(train)} training videos: n_s {ns_lo}-{ns_hi}, n_t {nt_lo}-{nt_hi} frames per video"
    )
    folder = resume.resume_dir(p, "student", base, input_files(p) + [t_path])

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
    student, dkp = dkp_start(p, plain, teacher, len(classes), device)
    nets = (student, dkp, teacher)
    val_config = configs_mod.by_name(p)[p["sweep"]["s3_config"]]
    val_eval = (
        dkp_validation(p, nets, t_entry, monitor, val_pairs, ctx, val_config)
        if group.main
        else dict
    )
    dkp_rows = train_dkp(p, nets, t_entry, ctx, val_eval, base + SEED_OFFSET["dkp"], pairs)
    distributed.close(group)
    if not group.main:
        return

    student.eval()
    dkp.eval()
    nets = {"student": student, "student_plain": plain, "student_kd": kd_net}
    save(p, s_path, t_path, classes, nets, dkp, teacher.feature_dim, pairs, train)
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
