"""Phase 2 of `dkp train-student`: the student, the DKP module and the gate trained with the
teacher frozen (method.md 5), one optimiser step (dkp_step), one phase (train_dkp) and its
validation (dkp_validation). dkp.train.student explains the phase and runs the stage.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from .. import runtime, sampling
from ..errors import DkpError
from ..models import autocast, embed_frames, prepare, preprocess, unit
from ..models.dkp import DKP, dkp_losses
from . import batches, distributed, loader, loop
from .context import TrainContext
from .data import PairFrames, VideoSet
from .distributed import SINGLE, Group

TERMS = ["ce_s", "ce_p", "feat", "kd", "ce_kd", "kd_kd"]


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
    ctx: TrainContext,
    val_eval,
    seed: int,
    ranges,
) -> list[dict]:
    """Phase 2; `seed` is the phase's own (the run's seed + student.SEED_OFFSET["dkp"]); ranges
    from student.resolve_ranges; ctx.group: the ranks of a torchrun, each training on its share of
    every step's videos (dkp.train.distributed.share_videos); rank 0 alone scores the validation
    frames (val_eval, from dkp_validation)."""
    train, device, group = ctx.train, ctx.device, ctx.group
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
            inputs = (xs, xt, gt, u, v, y)
            terms, hit = dkp_step(
                student, dkp, teacher, *inputs, opt, sched, cfg, device, group, step["share"]
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
        ctx.folder,
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
    val_pairs: list,
    ctx: TrainContext,
    nt_range,
):
    """A closure giving the phase-2 validation accuracies (DSTE p_i and C_s) on the fixed frames
    ctx.val_frames of `val`, taken at val_pairs (classifier.validation_frames)."""
    device, val_frames = ctx.device, ctx.val_frames
    lo, hi = nt_range
    nt = max(lo, min(hi, int(round((lo * hi) ** 0.5))))
    # the teacher frames the sweep's adaptive sampling feeds: the distinct frames nearest nt segment
    # centres
    t_idx = [
        sampling.distinct_indices(val.times[i], float(val.durations[i]), nt)
        for i in range(len(val))
    ]
    t_frames = PairFrames(val, [(i, int(j)) for i in range(len(val)) for j in t_idx[i]])
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
    y = torch.from_numpy(ctx.val_labels)

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
