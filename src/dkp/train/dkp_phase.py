"""Phase 3 of `dkp train-student`: the student, the DKP module and the gate trained with the
teacher frozen (method.md 5), one optimiser step (dkp_step), one phase (train_dkp) and its
validation (dkp_validation). dkp.train.student explains the phase and runs the stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .. import runtime, sampling
from ..errors import DkpError
from ..models import autocast, embed_chunks, embed_frames, prepare, preprocess, unit
from ..models.dkp import dkp_losses
from . import batches, distributed, loader, loop
from .context import TrainContext
from .data import PairFrames, VideoSet
from .distributed import SINGLE, Group

TERMS = ["ce_s", "ce_p", "feat", "kd", "ce_kd", "kd_kd"]


def step_videos(vids: np.ndarray, counts: list[tuple[int, int]], max_frames: int) -> int:
    """How many of a batch's first videos keep the sum of their n_s + n_t within max_frames (at
    least one)."""
    used = np.cumsum([ns + nt for ns, nt in counts])
    return max(1, int(np.searchsorted(used, max_frames, side="right")))


def padded(rows: list[np.ndarray], dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(B, n) values and mask of ragged per-video rows, n the longest."""
    n = max(len(r) for r in rows)
    out, mask = np.zeros((len(rows), n), dtype=dtype), np.zeros((len(rows), n), dtype=bool)
    for b, r in enumerate(rows):
        out[b, : len(r)], mask[b, : len(r)] = r, True
    return out, mask


@dataclass
class StepInputs:
    """One step's network-ready inputs for B videos. xs (N_s, 3, S, S): the student frames of every
    video, video after video, augmented, at the student's input; xt: the same frames at the
    teacher's input (targets T(x_i)); gt (N_t, ...): the teacher frames (g_j); u (B, n_s) and
    v (B, n_t): their positions, padded, with masks f_mask / g_mask (the videos' own counts);
    y (B,): the labels."""

    xs: torch.Tensor
    xt: torch.Tensor
    gt: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    f_mask: torch.Tensor
    g_mask: torch.Tensor
    y: torch.Tensor


def scatter(flat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, n, D) from per-frame rows (N, D) laid out video after video, zeros where mask is
    False."""
    out = flat.new_zeros((*mask.shape, flat.shape[-1]))
    out[mask] = flat
    return out


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


def dkp_terms(nets: tuple, inputs: StepInputs, cfg: dict, device) -> tuple[dict, int, int]:
    """The loss terms of one step's videos (dkp.models.dkp.dkp_losses), the student frames DSTE
    gets right, and the student frames."""
    student, dkp, teacher = nets
    f_mask, g_mask = inputs.f_mask, inputs.g_mask
    with torch.no_grad(), autocast(device):  # the frozen teacher
        target = scatter(embed_chunks(teacher, inputs.xt).float(), f_mask)
        g = scatter(embed_chunks(teacher, inputs.gt).float(), g_mask)
    with autocast(device):
        f = student.embed(inputs.xs)
        kd_logits = scatter(student.classify(f), f_mask)
        out = dkp(scatter(f, f_mask), inputs.u, g, inputs.v, f_mask, g_mask)
    terms = dkp_losses(
        out,
        kd_logits,
        inputs.y,
        target,
        dkp.teacher_head(target),
        f_mask,
        cfg["lambda_feat"],
        cfg["lambda_kd"],
        cfg["tau"],
    )
    hits = int(((out["p"].argmax(-1) == inputs.y[:, None]) & f_mask).sum())
    return terms, hits, int(f_mask.sum())


def dkp_step(
    nets: tuple,
    inputs: StepInputs | None,
    opt,
    sched,
    cfg: dict,
    device,
    group: Group = SINGLE,
    share: float = 1.0,
) -> tuple[dict, int, int]:
    """One optimiser step of phase 3: nets = (student, dkp, teacher), inputs for this rank's videos
    (None: none). Returns (each loss term as a float, student frames DSTE gets right, student
    frames).

    With several ranks the inputs are this rank's `share` of the step's videos, its loss and
    returned terms are weighted by that share, and the gradients are summed over the ranks
    (dkp.train.distributed), so the terms sum to the step's over the ranks."""
    params = [q for g in opt.param_groups for q in g["params"]]
    terms, hits, frames = dict.fromkeys(["total", *TERMS], 0.0), 0, 0
    if inputs is not None:
        terms, hits, frames = dkp_terms(nets, inputs, cfg, device)
        if group.world > 1:
            terms = {k: t * share for k, t in terms.items()}
    finite = inputs is None or bool(torch.isfinite(terms["total"]))
    opt.zero_grad(set_to_none=True)
    if finite and inputs is not None:
        terms["total"].backward()
    (bad,) = distributed.sum_gradients(params, group, [float(not finite)])
    if bad:
        size = (
            "" if inputs is None else f" at n_s <= {inputs.u.shape[1]}, n_t <= {inputs.v.shape[1]}"
        )
        raise DkpError(
            f"train-student: the DKP loss became non-finite{size}; the phase diverged (lower "
            "train.student.lr)"
        )
    if cfg["grad_clip"]:
        torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
    opt.step()
    sched.step()
    floats = {k: float(t.detach()) if torch.is_tensor(t) else t for k, t in terms.items()}
    return floats, hits, frames


def plan_epoch(
    rng: np.random.Generator, train: VideoSet, pairs: list, cfg: dict, aug: dict
) -> list[dict]:
    """Every random draw of an epoch, step by step (dkp.train.loader): per step, one of the sweep's
    DKP/DSTE configurations (`pairs`), the (n_s, n_t) it asks of each video of the batch (fixed
    sampling: from the video's length), and in each of a video's n equal segments the frame nearest
    a random point, each distinct frame once: evaluation's rule (dkp.sampling.distinct_indices)
    with the point drawn instead of the centre."""
    out = []
    for vids in batches.epoch_batches(rng, len(train), cfg["batch_videos"]):
        c = pairs[int(rng.integers(len(pairs)))]
        counts = [sampling.role_counts(c, float(train.durations[i])) for i in vids]
        keep = step_videos(vids, counts, cfg["max_frames_per_step"])
        vids, counts = vids[:keep], counts[:keep]
        s_idx, t_idx = [], []
        for i, (ns, nt) in zip(vids, counts):
            t, d = train.times[i], float(train.durations[i])
            s_idx.append(sampling.distinct_indices(t, d, ns, rng.random(ns)))
            t_idx.append(sampling.distinct_indices(t, d, nt, rng.random(nt)))
        u, f_mask = padded([train.positions(i, j) for i, j in zip(vids, s_idx)])
        v, g_mask = padded([train.positions(i, j) for i, j in zip(vids, t_idx)])
        out.append(
            {
                "xs": [(i, int(j)) for i, idx in zip(vids, s_idx) for j in idx],
                "aug": batches.draw_augment(
                    rng,
                    sum(len(ix) for ix in s_idx),
                    aug["crop_pad"],
                    aug["flip"],
                    aug["rot90"],
                    aug["channel_shuffle"],
                ),
                "gt": [(i, int(j)) for i, idx in zip(vids, t_idx) for j in idx],
                "u": u,
                "v": v,
                "f_mask": f_mask,
                "g_mask": g_mask,
                "y": train.labels[vids],
                "config": c.name,
            }
        )
    return out


PER_VIDEO = ("y", "u", "v", "f_mask", "g_mask")  # a row per video in a planned step
RAGGED = {"xs": "f_mask", "gt": "g_mask"}  # frames per video, as many as the mask's True values


def step_inputs(step: dict, net: dict, t_entry: dict, device) -> StepInputs:
    """A step the loader read as network inputs: the student frames augmented once, then brought
    to both networks' inputs (the teacher's targets see the student's very augmentation), the
    teacher frames un-augmented, as at test time."""
    x = step["xs"].to(device, non_blocking=True)
    x = unit(batches.apply_augment(x.permute(0, 3, 1, 2), step["aug"]))
    t_size, t_norm = t_entry["input_size"], t_entry["normalize"]
    return StepInputs(
        xs=prepare(x, net["input_size"], net["normalize"]),
        xt=prepare(x, t_size, t_norm),
        gt=preprocess(step["gt"].to(device, non_blocking=True), t_size, t_norm),
        **{k: torch.from_numpy(step[k]).to(device) for k in PER_VIDEO},
    )


class _Tally:
    """An epoch's loss terms, DSTE hits and student frames, summed over steps and ranks."""

    def __init__(self):
        self.sums, self.hits, self.seen = dict.fromkeys(["total", *TERMS], 0.0), 0, 0

    def add(self, terms: dict, hits: int, frames: int) -> None:
        for k in self.sums:
            self.sums[k] += terms[k]
        self.hits, self.seen = self.hits + hits, self.seen + frames

    def row(self, group: Group, steps: int) -> dict:
        *totals, hits, seen = group.sum([*self.sums.values(), self.hits, self.seen])
        row = {k: t / steps for k, t in zip(self.sums, totals)}
        row["loss"] = row.pop("total")
        return {**row, "train_acc": hits / seen}


def train_dkp(
    p: dict,
    nets: tuple,
    t_entry: dict,
    ctx: TrainContext,
    val_eval,
    seed: int,
    pairs: list,
) -> list[dict]:
    """Phase 3; nets = (student, dkp, teacher); `seed` is the phase's own (the run's seed +
    student.SEED_OFFSET["dkp"]); pairs: the sweep's DKP/DSTE configurations (student.dkp_pairs);
    ctx.group: the ranks of a torchrun, each training on its share of every step's videos
    (dkp.train.distributed.share_videos); rank 0 alone scores the validation frames (val_eval,
    from dkp_validation)."""
    student, dkp, _ = nets
    train, device, group = ctx.train, ctx.device, ctx.group
    cfg, aug, lcfg = p["train"]["student"], p["train"]["augment"], p["train"]["loader"]
    steps = -(-len(train) // cfg["batch_videos"])
    opt = loop.optimizer(list(student.parameters()) + list(dkp.parameters()), cfg, "sgd")
    sched = loop.warmup_cosine(opt, cfg["warmup_epochs"] * steps, cfg["epochs"] * steps)
    reader = loader.StepReader(train, tuple(RAGGED), lcfg["workers"], lcfg["prefetch"], device)

    def epoch(e: int, rng: np.random.Generator) -> dict:
        student.train()
        dkp.train()
        plan = [
            distributed.share_videos(s, group, PER_VIDEO, RAGGED)
            for s in plan_epoch(rng, train, pairs, cfg, aug)
        ]
        read = iter(reader([s for s in plan if len(s["y"])]))  # a rank may get no video
        tally = _Tally()
        bar = tqdm(
            plan,
            desc=f"dkp {e + 1}/{cfg['epochs']}",
            unit="batch",
            leave=False,
            disable=runtime.progress_disabled(),
        )
        for n_batches, planned in enumerate(bar, 1):
            if not len(planned["y"]):
                dkp_step(nets, None, opt, sched, cfg, device, group, 0.0)
                continue
            step = next(read)
            inputs = step_inputs(step, p["student"], t_entry, device)
            tally.add(*dkp_step(nets, inputs, opt, sched, cfg, device, group, step["share"]))
            bar.set_postfix(loss=f"{tally.sums['total'] / n_batches:.3f}")
        return {
            "phase": "dkp",
            **tally.row(group, len(plan)),
            "lr": opt.param_groups[0]["lr"],
            **(val_eval() if group.main else {}),
        }

    state = {"student": student, "dkp": dkp, "opt": opt, "sched": sched}
    return loop.run_phase(ctx.folder, "dkp", cfg["epochs"], seed, state, epoch, group)


def dkp_validation(
    p: dict,
    nets: tuple,
    t_entry: dict,
    val: VideoSet,
    val_pairs: list,
    ctx: TrainContext,
    config,
):
    """A closure giving the phase-3 validation accuracies (DSTE p_i and C_s) on the fixed frames
    ctx.val_frames of `val`, taken at val_pairs (classifier.validation_frames), with the teacher
    frames `config` (a sweep configuration) feeds each video at test time."""
    student, dkp, teacher = nets
    device, val_frames = ctx.device, ctx.val_frames
    t_idx = [
        sampling.config_indices(config, "t", val.times[i], float(val.durations[i]))
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
