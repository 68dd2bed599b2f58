"""Device, precision, threads and seeds: the run-time settings every stage applies first."""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np

from .errors import ParamError

PRECISIONS = ("auto", "fp32", "bf16")
# CPU flags of native bfloat16 arithmetic (AVX512-BF16, AMX); without them CPU bf16 autocast
# runs converted fp32 kernels and is many times slower than fp32
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warm_up_vector_math() -> None:
    """Initialise MKL's vector-math library (torch's sin, cos, log, erf on CPU) from one thread.

    When the first such call of a process is split across threads, it can return wrong low
    bits (bench/README.md, design measurements); the DKP position encoding calls sin, so a
    resumed run, whose first call falls in another epoch, would not be bit-identical to an
    uninterrupted one. A one-element call runs on the calling thread only and sets the
    library up before any split call.
    """
    import torch

    one = torch.ones(1)
    for fn in (torch.sin, torch.cos, torch.log, torch.erf):
        fn(one)


def setup(p: dict, seed: int):
    """Apply run.threads and run.precision (dkp.models.autocast follows it from then on), seed
    python, numpy and torch with `seed` (one of run.seeds, or the first of them for stages that
    run once); return the torch.device for run.device."""
    import torch

    torch.set_num_threads(p["run"]["threads"])
    warm_up_vector_math()
    seed_everything(seed)
    set_precision(p["run"]["precision"])
    return resolve_device(p["run"]["device"])


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError(
            "run.device: expected a visible CUDA device for 'cuda', found none (use auto or cpu)"
        )
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (a flag of NATIVE_BF16_FLAGS in
    /proc/cpuinfo; False where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags |= set(line.partition(":")[2].split())
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def resolve_precision(name: str, device) -> str:
    """run.precision -> "bf16" (bfloat16 autocast) or "fp32" (none) on `device`.

    auto: bf16 on CUDA, and on CPUs with native bfloat16 arithmetic (cpu_has_native_bf16);
    fp32 on other CPUs, where bf16 would be slower. Results depend on the precision: bf16
    runs are deterministic run to run, but differ from fp32 ones.
    """
    if name not in PRECISIONS:
        raise ParamError(f"run.precision: expected one of {list(PRECISIONS)}, found {name!r}")
    if name != "auto":
        return name
    return "bf16" if getattr(device, "type", device) == "cuda" or cpu_has_native_bf16() else "fp32"


_precision = "auto"  # run.precision of this process (set_precision); auto until a stage sets it


def set_precision(name: str) -> None:
    """The run.precision that `precision` (and so dkp.models.autocast) applies from now on."""
    resolve_precision(name, "cpu")  # rejects unknown names
    global _precision
    _precision = name


def precision(device) -> str:
    """What this process's run.precision resolves to on `device`: bf16 or fp32."""
    return resolve_precision(_precision, device)


def progress_disabled() -> bool:
    """Progress bars off when DKP_NO_PROGRESS is set (tests, CI logs)."""
    return bool(os.environ.get("DKP_NO_PROGRESS"))
