"""Device, threads and seeds: the run-time settings every stage applies first."""
from __future__ import annotations

import os
import random


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(p: dict):
    """Apply run.threads and run.seed; return the torch.device for run.device."""
    import torch

    torch.set_num_threads(p["run"]["threads"])
    seed_everything(p["run"]["seed"])
    return resolve_device(p["run"]["device"])


def resolve_device(name: str):
    import torch

    from .errors import ParamError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("run.device: expected a visible CUDA device for 'cuda', found none (use auto or cpu)")
    return torch.device(name)


def progress_disabled() -> bool:
    """Progress bars off when DKP_NO_PROGRESS is set (tests, CI logs)."""
    return bool(os.environ.get("DKP_NO_PROGRESS"))
