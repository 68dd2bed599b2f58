"""Training batches read from the frame store in background processes, ahead of the step.

An epoch is planned first, in the main process: every random draw of every step (which
videos, which frames, the augmentation) in the order the loop has always drawn them, from
the run's one Generator. The plan is a list of steps; worker processes (a torch DataLoader,
`train.loader.workers` of them, `prefetch` steps ahead each) read each step's frames from
the memory-mapped frame store into a ring of shared-memory buffers that the main process
mapped once, and hand over only the slot. The main process moves the frames to the device
and applies the planned augmentation and the preprocessing there. Reading frames is exact,
so a step gets the very same tensors whatever the number of workers (0 reads in the main
process), and a run gives the same result with any of them.

Why a ring: a tensor sent from a worker arrives in a fresh shared-memory segment, and the
main process then faults its pages in one by one, which cost more than reading the frames
(bench/README.md, "Training loader"). Slots are reused, so after the first round the main
process touches memory that is already mapped. On CUDA the ring is page-locked
(cudaHostRegister), so the copy to the GPU is a DMA issued without waiting.
"""

from __future__ import annotations

import functools
import os
import sys
import weakref
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..workers import loader_worker_init
from .data import VideoSet


def read_step(videos: VideoSet, step: dict, frames: tuple[str, ...]) -> dict:
    """The step with each name in `frames` replaced by the uint8 (N, H, W, 3) tensor of its
    pairs."""
    out = dict(step)
    for name in frames:
        out[name] = torch.from_numpy(videos.gather(step[name]))
    return out


class _RingSteps(Dataset):
    """Step k of a plan, its frames written into slot k % slots of the ring; returns the step with
    each frame name replaced by (slot, count)."""

    def __init__(self, videos: VideoSet, plan: list[dict], frames: tuple[str, ...], ring: dict):
        self.videos, self.plan, self.frames, self.ring = videos, plan, frames, ring

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> dict:
        step = dict(self.plan[k])
        for name in self.frames:
            buf = self.ring[name]
            slot, n = k % len(buf), len(step[name])
            self.videos.gather(step[name], out=buf[slot, :n].numpy())
            step[name] = (slot, n)
        return step


def _keep(step):
    """DataLoader's collate for batch_size=None: the step as the dataset made it."""
    return step


def _unpin(ptrs: list[int]) -> None:
    for ptr in ptrs:
        torch.cuda.cudart().cudaHostUnregister(ptr)


class StepReader:
    """Reads the steps of a plan, in order, `workers` processes ahead of the consumer.

    With workers > 0 on the CPU, a step's frame tensors are views of a ring slot that is
    written again two steps after the consumer asks for the next one: the consumer must be
    done with a step's frames when it asks for the step after next (the training loops are:
    they augment into new tensors at once). On CUDA the frames come on the device.
    """

    def __init__(
        self,
        videos: VideoSet,
        frames: tuple[str, ...],
        workers: int,
        prefetch: int,
        device: torch.device,
    ):
        self.videos, self.frames, self.workers, self.prefetch = videos, frames, workers, prefetch
        self.device = device
        # the in-flight steps, the consumer's, and the one before
        self.slots = workers * prefetch + 2
        self._ring: dict[str, torch.Tensor] = {}
        self._pinned: list[int] = []
        self._finalizer = weakref.finalize(self, _unpin, self._pinned)

    def __call__(self, plan: list[dict]) -> Iterator[dict]:
        # One draw from the global torch RNG per plan, whatever the number of workers: a DataLoader
        # iterator draws its base seed so, and the run's random stream (dropout in the DKP phase)
        # must not depend on `workers`. The DataLoader then draws from its own generator.
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        if self.workers == 0:
            for step in plan:
                yield self._to_device(read_step(self.videos, step, self.frames))
            return
        self._fit(plan)
        it = iter(
            DataLoader(
                _RingSteps(self.videos, plan, self.frames, self._ring),
                batch_size=None,
                shuffle=False,
                num_workers=self.workers,
                collate_fn=_keep,
                generator=torch.Generator().manual_seed(seed),
                prefetch_factor=self.prefetch,
                multiprocessing_context="fork",
                worker_init_fn=functools.partial(loader_worker_init, os.getpid()),
            )
        )
        done: list = []  # per step, the event after its copy to the GPU (None on the CPU)
        for k in range(len(plan)):
            # next() hands step k + workers * prefetch to a worker, into the slot of step k - 2
            if k >= 2 and done[k - 2] is not None:
                done[k - 2].synchronize()
            step = next(it)
            for name in self.frames:
                slot, n = step[name]
                step[name] = self._ring[name][slot, :n]
            step = self._to_device(step)
            if self.device.type == "cuda":
                event = torch.cuda.Event()
                event.record()
                done.append(event)
            else:
                done.append(None)
            yield step

    def _to_device(self, step: dict) -> dict:
        if self.device.type != "cuda":
            return step
        return {
            k: v.to(self.device, non_blocking=True) if k in self.frames else v
            for k, v in step.items()
        }

    def _fit(self, plan: list[dict]) -> None:
        """A ring with room for the plan's largest step, kept from the last plan when it has."""
        first = plan[0][self.frames[0]][0]
        shape = tuple(self.videos.frames[first[0]][first[1]].shape)
        need = {name: max(len(s[name]) for s in plan) for name in self.frames}
        if all(
            name in self._ring
            and self._ring[name].shape[1] >= need[name]
            and tuple(self._ring[name].shape[2:]) == shape
            for name in self.frames
        ):
            return
        _unpin(self._pinned)
        self._pinned.clear()
        self._ring = {
            name: torch.zeros((self.slots, n, *shape), dtype=torch.uint8).share_memory_()
            for name, n in need.items()
        }
        if self.device.type == "cuda":
            self._pin()

    def _pin(self) -> None:
        for buf in self._ring.values():
            code = int(torch.cuda.cudart().cudaHostRegister(buf.data_ptr(), buf.numel(), 1))
            if code:
                print(
                    f"dkp: loader: could not page-lock the frame ring (cudaError {code}); copies "
                    "to the GPU are pageable, results unchanged",
                    file=sys.stderr,
                )
                return
            self._pinned.append(buf.data_ptr())


def steps(
    videos: VideoSet,
    plan: list[dict],
    frames: tuple[str, ...],
    workers: int,
    prefetch: int,
    device: torch.device,
) -> Iterator[dict]:
    """One plan's steps through a StepReader of its own (a loop over epochs keeps one reader)."""
    return StepReader(videos, frames, workers, prefetch, device)(plan)
