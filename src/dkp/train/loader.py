"""Training batches read from the frame store in background processes, ahead of the step.

An epoch is planned first, in the main process: every random draw of every step (which
videos, which frames, the augmentation) in the order the loop has always drawn them, from
the run's one Generator. The plan is a list of steps; worker processes (a torch DataLoader,
`train.loader.workers` of them, `prefetch` steps ahead each, pinned memory on CUDA) read
each step's frames from the memory-mapped frame store and hand over uint8 tensors. The
main process moves them to the device and applies the planned augmentation and the
preprocessing there. Reading frames is exact, so a step gets the very same tensors
whatever the number of workers (0 reads in the main process), and a run gives the same
result with any of them.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .data import VideoSet


class PlannedSteps(Dataset):
    """Step k of a plan -> {name: uint8 tensor (N, H, W, 3)} of the (video, frame) pairs the plan
    lists under each name in `frames`, plus the plan's other entries unchanged."""

    def __init__(self, videos: VideoSet, plan: list[dict], frames: tuple[str, ...]):
        self.videos, self.plan, self.frames = videos, plan, frames

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> dict:
        step = dict(self.plan[k])
        for name in self.frames:
            step[name] = torch.from_numpy(self.videos.gather(step[name]))
        return step


def _keep(step):
    """DataLoader's collate for batch_size=None: the step as the dataset made it."""
    return step


def steps(videos: VideoSet, plan: list[dict], frames: tuple[str, ...], workers: int, prefetch: int,
          device: torch.device):
    """Iterate the plan's steps in order, their frames read by `workers` processes (0: here)."""
    return DataLoader(PlannedSteps(videos, plan, frames), batch_size=None, shuffle=False, num_workers=workers,
                      collate_fn=_keep, pin_memory=device.type == "cuda",
                      prefetch_factor=prefetch if workers > 0 else None,
                      multiprocessing_context="fork" if workers > 0 else None)

