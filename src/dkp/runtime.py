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


def warm_up_vector_math() -> None:
    """Initialise MKL's vector-math library (torch's sin, cos, log, erf on CPU) from one thread.

    Measured on torch 2.13 (CPU, 2 threads): when the first such call of a process is split
    across threads, it sometimes (about 1 process in 10) returns wrong low bits, up to 1.5e-4
    for sin of arguments near 200, and every later call is right. The DKP position encoding
    calls sin, so a run resumed from a checkpoint, whose first sin call falls in another
    epoch, was not bit-identical to an uninterrupted run. A one-element call runs on the
    calling thread only and sets the library up before any split call.
    """
    import torch

    one = torch.ones(1)
    for fn in (torch.sin, torch.cos, torch.log, torch.erf):
        fn(one)


def setup(p: dict, seed: int):
    """Apply run.threads and seed python, numpy and torch with `seed` (one of run.seeds, or the
    first of them for stages that run once); return the torch.device for run.device."""
    import torch

    torch.set_num_threads(p["run"]["threads"])
    warm_up_vector_math()
    seed_everything(seed)
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
