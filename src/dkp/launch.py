"""How a training stage starts its processes: one, one per GPU of the machine (torchrun
--standalone), or one per GPU across the nodes of a Slurm allocation (one torchrun agent per node,
rendezvous at the allocation's first node). Pure functions of the environment; dkp.cli execs the
command they return, before torch is imported.

Several nodes: a Slurm job of N > 1 nodes runs the stage's command once (Snakemake's job step).
That process re-runs itself as N tasks, one per node (`srun --ntasks-per-node 1`); each task sees
SLURM_NTASKS = N and becomes its node's torchrun agent: `--nnodes N`, `--nproc_per_node` the GPUs
of its node, c10d rendezvous at the first host of SLURM_JOB_NODELIST on a port derived from the job
id, the job id as rendezvous id. torch.distributed then numbers the ranks; rank 0 writes.
"""

from __future__ import annotations

import os
import re
import sys

from . import gpus

MARK = "DKP_SLURM_TASKS"  # set on the srun that makes the node tasks: they must not srun again
PORT_BASE = 29500


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: 'gpu[003-004,007],cpu1' -> 'gpu003'."""
    m = re.match(r"\s*([^,\[\s]+)(\[([^\]]*)\])?", nodelist)
    if not m:
        raise ValueError(f"not a Slurm node list: {nodelist!r}")
    prefix, ranges = m.group(1), m.group(3)
    if not ranges:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0]


def rendezvous_port(environ=os.environ) -> int:
    """MASTER_PORT where set, else one derived from the job id (two jobs sharing a first node do
    not collide unless their ids differ by a multiple of 10,000)."""
    if environ.get("MASTER_PORT", "").isdigit():
        return int(environ["MASTER_PORT"])
    job = environ.get("SLURM_JOB_ID", "0")
    return PORT_BASE + (int(job) % 10_000 if job.isdigit() else 0)


def procs_per_node(p: dict, environ=os.environ) -> int:
    """Training processes on this node: DKP_TRAIN_PROCS when set, else one per GPU the job may use
    (SLURM_GPUS_ON_NODE, else CUDA_VISIBLE_DEVICES or the machine's: dkp.gpus) unless run.device
    is cpu; at least 1."""
    if environ.get("DKP_TRAIN_PROCS"):
        return max(1, int(environ["DKP_TRAIN_PROCS"]))
    if p["run"]["device"] == "cpu":
        return 1
    on_node = environ.get("SLURM_GPUS_ON_NODE", "")
    if on_node.isdigit():
        return max(1, int(on_node))
    return max(1, len(gpus.machine_gpus(environ)))


def _int(environ, *names: str) -> int:
    for name in names:
        if environ.get(name, "").isdigit():
            return int(environ[name])
    return 1


def command(p: dict, argv: list[str], environ=os.environ) -> list[str] | None:
    """The command line to exec instead of running the stage here (argv: dkp's own, argv[0] the
    dkp script), or None to run it in this process."""
    if "WORLD_SIZE" in environ:  # a rank torchrun started
        return None
    python = [sys.executable, "-m", "torch.distributed.run"]
    tasks = _int(environ, "SLURM_NTASKS") if "SLURM_PROCID" in environ else 1
    nodes = _int(environ, "SLURM_NNODES", "SLURM_JOB_NUM_NODES")
    procs = procs_per_node(p, environ)
    if tasks > 1 and nodes > 1:  # one of the node tasks: this node's agent
        host = first_host(environ.get("SLURM_JOB_NODELIST") or environ["SLURM_NODELIST"])
        return python + [
            f"--nnodes={nodes}",
            f"--nproc_per_node={procs}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={host}:{rendezvous_port(environ)}",
            f"--rdzv_id=dkp-{environ.get('SLURM_JOB_ID', '0')}",
            *argv,
        ]
    job_nodes = _int(environ, "SLURM_JOB_NUM_NODES")
    if job_nodes > 1 and MARK not in environ:  # the job's one process: start a task per node
        return [
            "srun",
            "--overlap",
            f"--nodes={job_nodes}",
            f"--ntasks={job_nodes}",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            f"--export=ALL,{MARK}=1",
            *argv,
        ]
    if procs > 1:
        return python + ["--standalone", f"--nproc_per_node={procs}", *argv]
    return None
