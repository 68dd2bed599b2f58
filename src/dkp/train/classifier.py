"""TSN-style training of a frame classifier: the teacher, the plain student (the Student
baseline) and the Student+KD baseline.

Each batch takes `batch_videos` videos and one random frame from each of `segments`
equal runs of a video's frames (inside its labelled segments when within_activity),
augments them, and minimises the cross-entropy of every frame against its video's label,
plus, when distilling (dkp.train.kd), lambda tau^2 KL(teacher soft targets || student).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import runtime
from ..models import autocast, build_backbone, embed_frames, load_pretrained, prepare, unit
from ..models.dkp import kd_term
from . import batches, distributed, loader, loop
from .context import TrainContext
from .data import PairFrames, VideoSet
from .distributed import SINGLE, Group

LOG_COLUMNS = ["epoch", "loss", "lr", "train_acc", "val_acc", "seconds"]


def validation_frames(val: VideoSet, per_video: int) -> tuple[PairFrames, np.ndarray, list]:
    """Fixed validation frames: up to per_video frames evenly spread inside each video's
    labelled activity. Returns (the frames, read from the store when scored: PairFrames, labels,
    (video, frame) pairs)."""
    pairs = [
        (i, int(j))
        for i in range(len(val))
        for j in batches.even_indices(val.activity(i), per_video)
    ]
    labels = np.array([val.labels[i] for i, _ in pairs], dtype=np.int64)
    return PairFrames(val, pairs), labels, pairs


def validated(epoch: int, epochs: int, every: int) -> bool:
    """Whether 0-based `epoch` of `epochs` is scored on the validation frames: every
    `every`-th epoch, and always the last (the trained model's row)."""
    return (epoch + 1) % every == 0 or epoch + 1 == epochs


def classifier_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    opt,
    sched,
    label_smoothing: float,
    device: torch.device,
    group: Group = SINGLE,
    step_frames: int = 0,
    soft: torch.Tensor | None = None,
    tau: float = 1.0,
    weight: float = 0.0,
) -> tuple[dict, int]:
    """One optimiser step on network-ready frames x (N, 3, S, S) with labels y (N,); with several
    ranks, x is this rank's share of a step of step_frames frames. soft: the teacher's logits of
    the same frames (N, C), adding weight * kd_term(student, soft, tau) to the loss. Returns (the
    loss and, with soft, its terms "ce" and "kd", as means over x; frames classified right)."""
    with autocast(device):
        logits = model(x)
    logits = logits.float()
    if group.world == 1:
        scale, n = 1.0, 1
        ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    else:
        # DDP averages the ranks' gradients: each rank's sum x world / step_frames averages to the
        # step's mean
        scale, n = group.world / step_frames, float(len(y))
        ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing, reduction="sum")
    terms = {"ce": ce}
    if soft is not None:
        terms["kd"] = kd_term(logits, soft, tau) * n
    total = ce + weight * terms["kd"] if soft is not None else ce
    opt.zero_grad(set_to_none=True)
    (total if group.world == 1 else total * scale).backward()
    opt.step()
    sched.step()
    per = max(1, len(y)) if group.world > 1 else 1
    logged = {"loss": float(total.detach() / per)}
    if soft is not None:
        logged.update({k: float(t.detach() / per) for k, t in terms.items()})
    return logged, int((logits.argmax(-1) == y).sum())


def fit(
    net: dict,
    cfg: dict,
    aug: dict,
    lcfg: dict,
    ctx: TrainContext,
    *,
    role: str,
    tag: str,
    seed: int,
    num_classes: int,
    distill=None,
) -> tuple[torch.nn.Module, list[dict]]:
    """A fresh backbone of `net` (its pretrained weights where set, named as `role`), seeded
    with `seed` and trained by train_classifier; returned in eval mode with its log rows."""
    runtime.seed_everything(seed)
    model = build_backbone(net, num_classes)
    if net["pretrained"]:
        print(load_pretrained(model, net["pretrained"], role))
    model.to(ctx.device)
    rows = train_classifier(model, net, cfg, aug, lcfg, ctx, tag, seed, distill)
    return model.eval(), rows


def tsn_candidates(train, within_activity: bool) -> list[np.ndarray]:
    """Each training video's candidate frames: inside its labelled activity, or all of them."""
    return [
        train.activity(i) if within_activity else np.arange(train.n_frames(i))
        for i in range(len(train))
    ]


def drawn_rows(train, cfg: dict, aug: dict, seed: int) -> np.ndarray:
    """Sorted distinct rows (flat per-frame order of `train`) of every frame train_classifier
    draws in cfg's epochs from `seed`: its epoch plans replayed with run_phase's generator."""
    rng, candidates = loop.phase_rng(seed), tsn_candidates(train, cfg["within_activity"])
    rows = [
        step["rows"]
        for _ in range(cfg["epochs"])
        for step in plan_tsn_epoch(rng, train, candidates, cfg, aug, True)
    ]
    return np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)


def plan_tsn_epoch(
    rng: np.random.Generator, train, candidates: list, cfg: dict, aug: dict, rows: bool
) -> list[dict]:
    """Every random draw of an epoch, step by step (dkp.train.loader): batches of videos, TSN
    frames among each video's candidates, the augmentation; with `rows`, each frame's row in the
    flat per-frame order of `train` (where cached distillation targets live)."""
    out = []
    for vids in batches.epoch_batches(rng, len(train), cfg["batch_videos"]):
        pairs = [
            (int(i), int(j))
            for i in vids
            for j in batches.tsn_indices(rng, candidates[i], cfg["segments"])
        ]
        step = {
            "x": pairs,
            "y": train.labels[[i for i, _ in pairs]],
            "aug": batches.draw_augment(
                rng, len(pairs), aug["crop_pad"], aug["flip"], aug["rot90"], aug["channel_shuffle"]
            ),
        }
        if rows:
            step["rows"] = np.array([train.offsets[i] + j for i, j in pairs], np.int64)
        out.append(step)
    return out


class _Sums:
    """An epoch's loss (and its two distillation terms), hits and frames, over steps and ranks."""

    def __init__(self):
        self.total, self.hits, self.seen, self.ce, self.kd = 0.0, 0, 0, 0.0, 0.0

    def add(self, terms: dict, hits: int, n: int) -> None:
        self.total += terms["loss"] * n
        self.ce += terms.get("ce", 0.0) * n
        self.kd += terms.get("kd", 0.0) * n
        self.hits, self.seen = self.hits + hits, self.seen + n

    def row(self, group, distilled: bool) -> dict:
        total, hits, seen, ce, kd = group.sum([self.total, self.hits, self.seen, self.ce, self.kd])
        row = {"loss": total / seen, "train_acc": hits / seen}
        if distilled:
            row.update(ce_kd=ce / seen, kd_kd=kd / seen)
        return row


def train_classifier(
    model: torch.nn.Module,
    net: dict,
    cfg: dict,
    aug: dict,
    lcfg: dict,
    ctx: TrainContext,
    tag: str,
    seed: int,
    distill=None,
) -> list[dict]:
    """Train `model` in place for cfg['epochs'] epochs (resumable); return the log rows.

    net: the backbone's params group (input_size, normalize); cfg: its train group
    (epochs, batch_videos, segments, within_activity, lr, momentum, weight_decay,
    warmup_epochs, label_smoothing, val_every); aug: train.augment; lcfg: train.loader; ctx: the
    stage's videos, monitor frames, device, resume folder and ranks (each rank trains on its share
    of every step, rank 0 scores the validation frames).
    The validation frames are scored after every val_every-th epoch and after the last
    (`validated`); the other rows have no val_acc (an empty cell in the CSV log).
    distill: a dkp.train.kd.Distill (teacher soft targets, tau, weight), or None for
    cross-entropy alone; with it the rows also carry ce_kd and kd_kd, the loss's two terms.
    """
    train, device, group = ctx.train, ctx.device, ctx.group
    size, norm = net["input_size"], net["normalize"]
    steps = -(-len(train) // cfg["batch_videos"])
    net = distributed.wrap(model, group, device)
    opt = loop.optimizer(model.parameters(), cfg, cfg["optimizer"])
    sched = loop.warmup_cosine(opt, cfg["warmup_epochs"] * steps, cfg["epochs"] * steps)
    candidates = tsn_candidates(train, cfg["within_activity"])
    y_val = torch.from_numpy(ctx.val_labels)
    reader = loader.StepReader(train, ("x",), lcfg["workers"], lcfg["prefetch"], device)
    per_frame = ("x", "y", "rows") if distill is not None else ("x", "y")
    soft_args = (distill.tau, distill.weight) if distill is not None else ()

    def epoch(e: int, rng: np.random.Generator) -> dict:
        net.train()
        sums = _Sums()
        plan = plan_tsn_epoch(rng, train, candidates, cfg, aug, distill is not None)
        steps = [distributed.share_step(s, group, per_frame) for s in plan]
        bar = tqdm(
            reader(steps),
            total=len(steps),
            desc=f"{tag} {e + 1}/{cfg['epochs']}",
            unit="batch",
            leave=False,
            disable=runtime.progress_disabled(),
        )
        for step in bar:
            x = step["x"].to(device, non_blocking=True).permute(0, 3, 1, 2)
            x = batches.apply_augment(x, step["aug"])
            soft = (distill.targets(step["rows"], x),) if distill is not None else ()
            x = prepare(unit(x), size, norm)
            y = torch.from_numpy(step["y"]).to(device)
            label_smoothing = cfg["label_smoothing"]
            sums.add(
                *classifier_step(
                    net,
                    x,
                    y,
                    opt,
                    sched,
                    label_smoothing,
                    device,
                    group,
                    step["n"],
                    *soft,
                    *soft_args,
                ),
                len(y),
            )
            bar.set_postfix(loss=f"{sums.total / sums.seen:.3f}")
        row = {**sums.row(group, distill is not None), "lr": opt.param_groups[0]["lr"]}
        if validated(e, cfg["epochs"], cfg["val_every"]) and group.main:
            model.eval()  # BN statistics and the classifier's dropout in inference mode
            feats = embed_frames(model, ctx.val_frames, size, norm, device)
            row["val_acc"] = loop.frame_accuracy(
                lambda f: model.classify(f.to(device)), feats, y_val
            )
        return row

    state = {"model": model, "opt": opt, "sched": sched}
    return loop.run_phase(ctx.folder, tag, cfg["epochs"], seed, state, epoch, group)
