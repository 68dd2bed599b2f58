"""Which GPUs a torch stage may use, chosen before torch starts (CUDA_VISIBLE_DEVICES).

- Under `dvc repro` stages run one at a time: a stage sees every GPU of the machine, and a
  training stage runs one process per GPU (dkp.launch).
- Under a local Snakemake run torch jobs run side by side. The Snakefile tells each job how many
  GPUs its rule asks for (its `gpu` resource) through DKP_JOB_GPUS; the job takes that many
  free GPUs of the machine by locking one file per GPU (flock, released when the job's processes
  end, even by kill -9), waits while none is free, and sets CUDA_VISIBLE_DEVICES to them; a job
  whose rule asks for none sees no GPU. Snakemake's `--resources gpu=N` keeps the number of such
  jobs within the machine's N GPUs, so none waits.
- Under Slurm the allocation already sets CUDA_VISIBLE_DEVICES: nothing is chosen here.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ENV = "DKP_JOB_GPUS"  # JSON {stage: GPUs} the Snakefile exports to its local jobs
LOCKS_ENV = "DKP_GPU_LOCKS"  # the folder of the lock files (default: one per user in the temp dir)

_held: list[int] = []  # this process's lock file descriptors, kept open until it exits


def machine_gpus(environ=os.environ) -> list[str]:
    """The GPU ids this process may choose from: CUDA_VISIBLE_DEVICES where set, else one per
    NVIDIA device the driver lists (/proc/driver/nvidia/gpus), without initialising CUDA."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [g for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    listed = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(listed.iterdir())))] if listed.is_dir() else []


def wanted(stage: str, environ=os.environ) -> int | None:
    """GPUs the job of `stage` asks for under a local Snakemake run, None outside one."""
    if "WORLD_SIZE" in environ or "SLURM_JOB_ID" in environ or ENV not in environ:
        return None
    try:
        spec = json.loads(environ[ENV])
    except ValueError:
        return None
    n = spec.get(stage) if isinstance(spec, dict) else None
    return int(n) if isinstance(n, int) and n >= 0 else None


def lock_folder(environ=os.environ) -> Path:
    folder = Path(environ.get(LOCKS_ENV) or Path(tempfile.gettempdir()) / f"dkp-gpus-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def claim(ids: list[str], n: int, folder: Path, poll: float = 1.0) -> list[str]:
    """Lock n of the GPU ids (the first free ones), waiting while fewer than n are free; the locks
    stay held by this process and every process it execs (the descriptors are inheritable)."""
    said = False
    while True:
        got = []
        for gpu in ids:
            fd = os.open(folder / f"gpu-{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            got.append((gpu, fd))
            if len(got) == n:
                break
        if len(got) == n:
            for _, fd in got:
                os.set_inheritable(fd, True)
                _held.append(fd)
            return [gpu for gpu, _ in got]
        for _, fd in got:
            os.close(fd)
        if not said:
            print(f"dkp: waiting for {n} free GPU(s) of {','.join(ids)}", file=sys.stderr)
            said = True
        time.sleep(poll)


def setup(stage: str, environ=os.environ) -> str | None:
    """Set CUDA_VISIBLE_DEVICES in `environ` for a local Snakemake job of `stage` (see the module
    docstring); returns the line it reports, or None where it changes nothing."""
    n = wanted(stage, environ)
    if n is None:
        return None
    ids = machine_gpus(environ)
    if n == 0 or not ids:
        environ["CUDA_VISIBLE_DEVICES"] = ""
        return f"dkp {stage}: no GPU (its rule asks for {n}; the machine lists {len(ids)})"
    if n > len(ids):
        n = len(ids)
    chosen = claim(ids, n, lock_folder(environ))
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    return f"dkp {stage}: GPU {','.join(chosen)} of {','.join(ids)} (CUDA_VISIBLE_DEVICES)"
