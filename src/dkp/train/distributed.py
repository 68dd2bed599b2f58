"""Data-parallel training over processes with torch.distributed, when run under `torchrun`.

`torchrun --nproc_per_node N $(which dkp) train-teacher --seed S` starts N ranks; each plans
the same epoch (the same seed, the same draws), takes its contiguous share of every step's
frames, and DistributedDataParallel averages the gradients, the loss scaled so that the
average is the mean over the whole step: the global batch is `batch_videos` as in one
process. NCCL on GPUs (one per rank, `LOCAL_RANK`), gloo on CPUs. Rank 0 alone writes resume
state, checkpoints and logs; every rank resumes from the same state.

On CPUs the ranks of a node split `run.threads` between them.

The student's DKP phase shares each step by videos instead (a step holds few videos of many
frames, and a rank may get none): every rank weights its loss by its share of the step's
videos and the gradients are summed over the ranks (`sum_gradients`), not through DDP.

BatchNorm: in the teacher and the Student baseline, SyncBatchNorm on GPUs, so the statistics
are those of the global batch, as in one process; per-rank statistics on CPUs, where
SyncBatchNorm does not run, and in the DKP phase everywhere (its ranks do not all run a
forward pass). A multi-process run therefore differs a little from a one-process run
(tests/test_train.py states how much). Without WORLD_SIZE > 1 nothing here changes a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place among the training ranks (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous share of n items (the first n % world ranks take one more)."""
        bounds = np.linspace(0, n, self.world + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks."""
        if self.world == 1:
            return list(values)
        on = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
        t = torch.tensor(values, dtype=torch.float64, device=on)
        dist.all_reduce(t)
        return t.tolist()

    def sum_tensor(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Element-wise sum of a CPU tensor over the ranks, through `device` (NCCL reduces GPU
        tensors only); returned on the CPU."""
        if self.world == 1:
            return t
        on = t.to(device) if dist.get_backend() == "nccl" else t
        dist.all_reduce(on)
        return on.cpu()


SINGLE = Group()  # one process


def init(device: torch.device) -> tuple[Group, torch.device]:
    """The rank group from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK) and the device
    of this rank: cuda:LOCAL_RANK on GPUs. One process: Group() and `device` unchanged."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:  # the node's ranks share run.threads: more threads than cores stalls every rank
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, torch.get_num_threads() // local_world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Group(rank, world), device


def wrap(model: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """`model` for training on this rank: DistributedDataParallel (with SyncBatchNorm on GPUs) when
    there are several ranks, else itself."""
    if group.world == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def share_step(step: dict, group: Group, per_frame: tuple[str, ...]) -> dict:
    """A planned step cut to this rank's share: the lists or arrays under `per_frame` and the
    per-frame arrays of its augmentation plan ("aug"); the rest unchanged. "n" keeps the step's
    size."""
    n = len(step[per_frame[0]])
    if group.world == 1:
        return {**step, "n": n}
    sl = group.share(n)
    out = {**step, "n": n}
    for k in per_frame:
        out[k] = step[k][sl]
    if "aug" in step:
        out["aug"] = {
            k: (v[sl] if isinstance(v, np.ndarray) else v) for k, v in step["aug"].items()
        }
    return out


def share_videos(
    step: dict, group: Group, keys: tuple[str, ...], ragged: dict[str, str] | None = None
) -> dict:
    """A planned step of B videos cut to this rank's contiguous share of the videos (possibly
    none); "share" is this rank's fraction of the B videos.

    Every entry under `keys` holds the same number of rows for each video, in video order, and
    `keys[0]` one a video. An entry under `ragged` holds each video's rows one after another, as
    many as the True values of that video's row in the named mask (a key of `keys`); the arrays
    of the augmentation plan ("aug") follow the first ragged entry (or keys[1] without one)."""
    n = len(step[keys[0]])
    if group.world == 1:
        return {**step, "share": 1.0}
    sl = group.share(n)

    def even(rows):
        per = len(rows) // n
        return rows[sl.start * per : sl.stop * per]

    def by_mask(mask_key):
        ends = np.concatenate([[0], np.cumsum(np.asarray(step[mask_key]).sum(axis=1))])
        return lambda rows: rows[int(ends[sl.start]) : int(ends[sl.stop])]

    cuts = {k: by_mask(m) for k, m in (ragged or {}).items()}
    out = {**step, "share": (sl.stop - sl.start) / n}
    for k in keys:
        out[k] = even(step[k])
    for k, cut in cuts.items():
        out[k] = cut(step[k])
    if "aug" in step:
        aug_cut = next(iter(cuts.values())) if cuts else even
        out["aug"] = {
            k: (aug_cut(v) if isinstance(v, np.ndarray) else v) for k, v in step["aug"].items()
        }
    return out


def sum_gradients(params: list[torch.Tensor], group: Group, flags: list[float]) -> list[float]:
    """Sum the gradients of `params` over the ranks, in place, in one reduction (a parameter
    without a gradient counts as zeros), together with `flags`; returns the summed flags."""
    if group.world == 1:
        return list(flags)
    grads = [q.grad if q.grad is not None else torch.zeros_like(q) for q in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [grads[0].new_tensor(flags).float()])
    dist.all_reduce(flat)
    at = 0
    for q in params:
        q.grad = flat[at : at + q.numel()].view_as(q).to(q.dtype)
        at += q.numel()
    return flat[at:].tolist()


def close(group: Group) -> None:
    if group.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
