"""`dkp train-student`: the Student baseline, then the student with DKP, the gate and KD
(method.md 5).

Phase 1 ("plain"): the student backbone alone, trained like the teacher (TSN frames,
cross-entropy, train.plain_student): the "Student alone" baseline, which never sees
the teacher. Phase 2 ("dkp"): a copy of it, the DKP module and the gate, trained with
the teacher frozen on the losses of dkp.models.dkp.dkp_losses. Each step draws its
numbers of student and teacher frames log-uniformly over train.student.ns_range / nt_range
(one random frame per equal segment of the whole video), so one checkpoint serves every
sampling configuration; `auto` ranges are the distinct counts the sweep's DKP and DSTE
configurations feed the training and validation videos (resolve_ranges), so DKP is never
evaluated outside the range it was trained on. A step takes train.student.batch_videos
videos, or fewer so that videos x (n_s + n_t) stays within max_frames_per_step. The frozen
teacher runs in the loop (eval mode, no gradients) on
the teacher frames (un-augmented, as at test time) for g_j, and on the student frames
with the student's very augmentation for the targets T(x_i); with a few epochs the loop
shows it fewer frames than caching its features of every training frame would take.

For `--seed N`, with the teacher of seed N, writes models/seed-N/student.pt and
results/train/seed-N/student.csv (rows of both phases; `val_acc` is frame accuracy inside the
labelled activity on data.tune_subset (train.data.monitor_subset): of the plain student in phase 1,
of DSTE's p_i with the teacher frames adaptive sampling of n_t = the geometric mean of nt_range
feeds in phase 2; `val_acc_kd` is the DKP-trained student's own classifier C_s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import checkpoints, framestore, layout, runtime, sampling
from .. import configs as configs_mod
from ..errors import DkpError
from ..models import (
    autocast,
    build_backbone,
    embed_frames,
    prepare,
    preprocess,
    unit,
)
from ..models.dkp import DKP, dkp_losses
from . import batches, classifier, distributed, loader, loop, resume
from .data import VideoSet, load_subset, monitor_subset
from .distributed import SINGLE, Group
from .teacher import input_files, run_reads

SEED_OFFSET = {"plain": 1, "dkp": 2}
TERMS = ["ce_s", "ce_p", "feat", "kd", "ce_kd", "kd_kd"]
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


def step_videos(vids: np.ndarray, ns: int, nt: int, max_frames: int) -> np.ndarray:
    """The first videos of a batch that keep videos x (ns + nt) within max_frames (at least one)."""
    return vids[: max(1, min(len(vids), max_frames // (ns + nt)))]


def pad_batch(rows: list[np.ndarray], table: np.ndarray, pos: list[np.ndarray]):
    """(B, n, D) features gathered from table, (B, n) positions, (B, n) mask for ragged row
    lists."""
    n = max(len(r) for r in rows)
    feats = np.zeros((len(rows), n, table.shape[1]), dtype=np.float32)
    where = np.zeros((len(rows), n), dtype=np.float32)
    mask = np.zeros((len(rows), n), dtype=bool)
    for b, (r, u) in enumerate(zip(rows, pos)):
        feats[b, : len(r)], where[b, : len(r)], mask[b, : len(r)] = table[r], u, True
    return torch.from_numpy(feats), torch.from_numpy(where), torch.from_numpy(mask)


def dkp_step(
    student,
    dkp: DKP,
    teacher,
    xs,
    xt,
    gt,
    u,
    v,
    y,
    opt,
    sched,
    cfg: dict,
    device,
    group: Group = SINGLE,
    share: float = 1.0,
) -> tuple[dict, int]:
    """One optimiser step of phase 2 on network-ready inputs for B videos: xs (B*n_s, 3, S, S) the
    augmented student frames at the student's input, xt the same frames at the teacher's input
    (targets T(x_i)), gt (B*n_t, ...) the teacher frames (g_j), u (B, n_s) and v (B, n_t) their
    positions, y (B,) the labels. Returns (each loss term as a float, student frames DSTE gets
    right).

    With several ranks the inputs are this rank's `share` of the step's videos (u None: none), its
    loss and returned terms are weighted by that share, and the gradients are summed over the
    ranks (dkp.train.distributed), so the terms sum to the step's over the ranks."""
    params = [q for g in opt.param_groups for q in g["params"]]
    ns, nt = (u.shape[1], v.shape[1]) if u is not None else (0, 0)
    terms, hits = dict.fromkeys(["total", *TERMS], 0.0), 0
    if u is not None:
        B = u.shape[0]
        with torch.no_grad(), autocast(device):  # the frozen teacher
            target = teacher.embed(xt).float().view(B, ns, -1)
            g = teacher.embed(gt).float().view(B, nt, -1)
        with autocast(device):
            f = student.embed(xs)
            kd_logits = student.classify(f).view(B, ns, -1)
            out = dkp(f.view(B, ns, -1), u, g, v)
        terms = dkp_losses(
            out,
            kd_logits,
            y,
            target,
            dkp.teacher_head(target),
            None,
            cfg["lambda_feat"],
            cfg["lambda_kd"],
            cfg["tau"],
        )
        if group.world > 1:
            terms = {k: t * share for k, t in terms.items()}
        hits = int((out["p"].argmax(-1) == y[:, None]).sum())
    finite = u is None or bool(torch.isfinite(terms["total"]))
    opt.zero_grad(set_to_none=True)
    if finite and u is not None:
        terms["total"].backward()
    (bad,) = distributed.sum_gradients(params, group, [float(not finite)])
    if bad:
        raise DkpError(
            f"train-student: the DKP loss became non-finite at n_s={ns}, n_t={nt}; the phase "
            f"diverged (lower train.student.lr or narrow train.student.ns_range/nt_range)"
        )
    if cfg["grad_clip"]:
        torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
    opt.step()
    sched.step()
    return {k: float(t.detach()) if torch.is_tensor(t) else t for k, t in terms.items()}, hits


def train_dkp(
    p: dict,
    student,
    dkp: DKP,
    teacher,
    t_entry: dict,
    train: VideoSet,
    val_eval,
    device,
    folder: Path,
    seed: int,
    ranges,
    group: Group = SINGLE,
) -> list[dict]:
    """Phase 2; `seed` is the phase's own (the run's seed + SEED_OFFSET["dkp"]); ranges from
    resolve_ranges; group: the ranks of a torchrun, each training on its share of every step's
    videos (dkp.train.distributed.share_videos); rank 0 alone scores the validation frames."""
    cfg, aug, net, lcfg = (
        p["train"]["student"],
        p["train"]["augment"],
        p["student"],
        p["train"]["loader"],
    )
    steps = -(-len(train) // cfg["batch_videos"])
    opt = loop.optimizer(list(student.parameters()) + list(dkp.parameters()), cfg, "sgd")
    sched = loop.warmup_cosine(opt, cfg["warmup_epochs"] * steps, cfg["epochs"] * steps)
    (ns_lo, ns_hi), (nt_lo, nt_hi) = ranges
    t_size, t_norm = t_entry["input_size"], t_entry["normalize"]
    reader = loader.StepReader(train, ("xs", "gt"), lcfg["workers"], lcfg["prefetch"], device)

    def plan(rng: np.random.Generator) -> list[dict]:
        """Every random draw of an epoch, step by step (dkp.train.loader)."""
        out = []
        for vids in batches.epoch_batches(rng, len(train), cfg["batch_videos"]):
            ns, nt = sampling.draw_count(rng, ns_lo, ns_hi), sampling.draw_count(rng, nt_lo, nt_hi)
            vids = step_videos(vids, ns, nt, cfg["max_frames_per_step"])
            s_idx = [batches.spread_indices(rng, train.n_frames(i), ns) for i in vids]
            t_idx = [batches.spread_indices(rng, train.n_frames(i), nt) for i in vids]
            out.append(
                {
                    "xs": [(i, j) for i, idx in zip(vids, s_idx) for j in idx],
                    "aug": batches.draw_augment(
                        rng,
                        len(vids) * ns,
                        aug["crop_pad"],
                        aug["flip"],
                        aug["rot90"],
                        aug["channel_shuffle"],
                    ),
                    "gt": [(i, j) for i, idx in zip(vids, t_idx) for j in idx],
                    "u": np.stack([train.positions(i, j) for i, j in zip(vids, s_idx)]).astype(
                        np.float32
                    ),
                    "v": np.stack([train.positions(i, j) for i, j in zip(vids, t_idx)]).astype(
                        np.float32
                    ),
                    "y": train.labels[vids],
                }
            )
        return out

    def epoch(e: int, rng: np.random.Generator) -> dict:
        student.train()
        dkp.train()
        sums, hits, seen = dict.fromkeys(["total", *TERMS], 0.0), 0, 0
        steps = [distributed.share_videos(s, group, ("y", "u", "v", "xs", "gt")) for s in plan(rng)]
        read = iter(reader([s for s in steps if len(s["y"])]))  # a rank may get no video
        bar = tqdm(
            steps,
            desc=f"dkp {e + 1}/{cfg['epochs']}",
            unit="batch",
            leave=False,
            disable=runtime.progress_disabled(),
        )
        for n_batches, planned in enumerate(bar, 1):
            if not len(planned["y"]):
                terms, hit = dkp_step(
                    student, dkp, teacher, *[None] * 6, opt, sched, cfg, device, group, 0.0
                )
                continue
            step = next(read)
            x = step["xs"].to(device, non_blocking=True)
            x = unit(batches.apply_augment(x.permute(0, 3, 1, 2), step["aug"]))
            y_frames = step["gt"].to(device, non_blocking=True)
            u, v = torch.from_numpy(step["u"]).to(device), torch.from_numpy(step["v"]).to(device)
            y = torch.from_numpy(step["y"]).to(device)
            B, ns = u.shape
            xt, gt = prepare(x, t_size, t_norm), preprocess(y_frames, t_size, t_norm)
            xs = prepare(x, net["input_size"], net["normalize"])
            terms, hit = dkp_step(
                student,
                dkp,
                teacher,
                xs,
                xt,
                gt,
                u,
                v,
                y,
                opt,
                sched,
                cfg,
                device,
                group,
                step["share"],
            )
            for k in sums:
                sums[k] += terms[k]
            hits += hit
            seen += B * ns
            bar.set_postfix(loss=f"{sums['total'] / n_batches:.3f}")
        *totals, hits, seen = group.sum([*sums.values(), hits, seen])
        row = {k: t / len(steps) for k, t in zip(sums, totals)}
        row["loss"] = row.pop("total")
        return {
            "phase": "dkp",
            **row,
            "lr": opt.param_groups[0]["lr"],
            "train_acc": hits / seen,
            **(val_eval() if group.main else {}),
        }

    return loop.run_phase(
        folder,
        "dkp",
        cfg["epochs"],
        seed,
        {"student": student, "dkp": dkp, "opt": opt, "sched": sched},
        epoch,
        group,
    )


def dkp_validation(
    p: dict,
    student,
    dkp: DKP,
    teacher,
    t_entry: dict,
    val: VideoSet,
    val_frames,
    val_labels,
    val_pairs,
    device,
    nt_range,
):
    """A closure giving the phase-2 validation accuracies (DSTE p_i and C_s) on the fixed frames."""
    lo, hi = nt_range
    nt = max(lo, min(hi, int(round((lo * hi) ** 0.5))))
    # the teacher frames the sweep's adaptive sampling feeds: the distinct frames nearest nt segment
    # centres
    t_idx = [
        sampling.distinct_indices(val.times[i], float(val.durations[i]), nt)
        for i in range(len(val))
    ]
    t_frames = val.gather([(i, int(j)) for i in range(len(val)) for j in t_idx[i]])
    t_table = embed_frames(
        teacher, t_frames, t_entry["input_size"], t_entry["normalize"], device
    ).numpy()
    bounds = np.cumsum([0] + [len(ix) for ix in t_idx])
    t_rows = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(val))]
    g, v, g_mask = pad_batch(t_rows, t_table, [val.positions(i, t_idx[i]) for i in range(len(val))])
    video_of = np.array([i for i, _ in val_pairs])
    s_rows = [np.flatnonzero(video_of == i) for i in range(len(val))]
    s_pos = [
        val.positions(i, np.array([j for _, j in val_pairs])[s_rows[i]]) for i in range(len(val))
    ]
    y = torch.from_numpy(val_labels)

    def evaluate() -> dict:
        student.eval()
        dkp.eval()
        table = embed_frames(
            student, val_frames, p["student"]["input_size"], p["student"]["normalize"], device
        )
        f, u, f_mask = pad_batch(s_rows, table.numpy(), s_pos)
        with torch.no_grad(), autocast(device):
            out = dkp(
                f.to(device),
                u.to(device),
                g.to(device),
                v.to(device),
                f_mask.to(device),
                g_mask.to(device),
            )
            kd = loop.frame_accuracy(lambda x: student.classify(x.to(device)), table, y)
        frame_probs = out["p"].float().cpu()[f_mask]
        return {
            "val_acc": float((frame_probs.argmax(-1) == y[np.concatenate(s_rows)]).float().mean()),
            "val_acc_kd": kd,
        }

    return evaluate


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
    plain, plain_rows = classifier.fit(
        p["student"],
        p["train"]["plain_student"],
        p["train"]["augment"],
        p["train"]["loader"],
        role="student",
        tag="plain",
        seed=base + SEED_OFFSET["plain"],
        num_classes=len(classes),
        train=train,
        val_frames=val_frames,
        val_labels=val_labels,
        device=device,
        folder=folder,
        group=group,
    )

    # Phase 2: DKP + gate + KD from the plain student, teacher frozen
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
        dkp_validation(
            p,
            student,
            dkp,
            teacher,
            t_entry,
            monitor,
            val_frames,
            val_labels,
            val_pairs,
            device,
            ranges[1],
        )
        if group.main
        else dict
    )
    dkp_rows = train_dkp(
        p,
        student,
        dkp,
        teacher,
        t_entry,
        train,
        val_eval,
        device,
        folder,
        base + SEED_OFFSET["dkp"],
        ranges,
        group,
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
    rows += [{**r, "epoch": len(plain_rows) + r["epoch"]} for r in dkp_rows]
    loop.write_log(layout.train_log("student", base), rows, LOG_COLUMNS)
    print(
        f"student: plain {len(plain_rows)} epochs (frame accuracy on {monitor_subset(p)} "
        f"{plain_rows[-1]['val_acc']:.3f}), DKP {len(dkp_rows)} epochs (DSTE "
        f"{dkp_rows[-1]['val_acc']:.3f}, C_s {dkp_rows[-1]['val_acc_kd']:.3f}) -> {s_path}"
        + (f" ({group.world} ranks)" if group.world > 1 else "")
    )
