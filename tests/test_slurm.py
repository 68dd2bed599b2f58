"""The cluster path for real: the tiny pipeline through a single-node Slurm.

tests/slurm_cluster.sh starts slurmctld, slurmd and munged (installing Debian's packages
when running as root); the pipeline then runs with the project's Slurm profile, and its
results must equal those of the local `dvc repro`. Skipped, with the reason, where no
Slurm can be started (not root, no apt-get or network, daemons failing).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from workflow_repos import REPO, make_repo, sh

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPT = REPO / "tests" / "slurm_cluster.sh"
# The test node has no GPU: the profile's GPU requests are overridden.
CPU_ONLY = [
    "--set-resources",
    "train_teacher:gpu=0",
    "train_student:gpu=0",
    "features:gpu=0",
    "sweep:gpu=0",
]


@pytest.fixture(scope="module")
def slurm_conf():
    """A running single-node Slurm; stopped afterwards unless it was running before."""
    was_running = sh([str(SCRIPT), "status"], REPO, check=False).returncode == 0
    proc = sh([str(SCRIPT), "start"], REPO, timeout=900, check=False)
    if proc.returncode == 3:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr
    try:
        yield {"SLURM_CONF": sh([str(SCRIPT), "env"], REPO).stdout.split("=", 1)[1].strip()}
    finally:
        if not was_running:
            sh([str(SCRIPT), "stop"], REPO, check=False)


def test_tiny_pipeline_on_slurm_matches_the_local_run(slurm_conf, tiny_dvc_repro, tmp_path_factory):
    local, _ = tiny_dvc_repro
    repo = make_repo(tmp_path_factory.mktemp("slurm-run"))
    start = time.monotonic()
    # timeout -k: on SIGTERM snakemake waits for its running jobs; the KILL ends it for sure
    proc = sh(
        [
            "timeout",
            "-k",
            "20",
            "840",
            "snakemake",
            "--profile",
            "workflow/profiles/slurm",
            "--jobs",
            "4",
            *CPU_ONLY,
        ],
        repo,
        timeout=900,
        check=False,
        extra_env=slurm_conf,
    )
    seconds = time.monotonic() - start
    print(
        f"\n[timing] snakemake --profile workflow/profiles/slurm on the tiny params: "
        f"{seconds:.1f} s"
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "SLURM" in proc.stderr or "slurm" in proc.stderr  # it really went through the executor
    jobs = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j %T"],
        capture_output=True,
        text=True,
        env=dict(os.environ, **slurm_conf),
    ).stdout.split("\n")
    assert sum("COMPLETED" in j for j in jobs) >= 10, jobs
    for rel in ("results/metrics.json", "results/curves.csv"):
        assert (repo / rel).read_bytes() == (local / rel).read_bytes(), rel


def test_teacher_trains_on_two_processes_in_one_slurm_job(slurm_conf, tmp_path_factory):
    """A training job on 2 CPU processes through the Slurm profile: DKP_TRAIN_PROCS=2 reaches the
    job (the profile's sbatch exports the environment), as SLURM_GPUS_ON_NODE=2 would with 2
    GPUs, and `dkp train-teacher` relaunches itself under torchrun on 2 ranks."""
    repo = make_repo(tmp_path_factory.mktemp("slurm-ranks"))
    proc = sh(
        [
            "timeout",
            "-k",
            "20",
            "600",
            "snakemake",
            "models/seed-0/teacher.pt",  # first: --set-resources takes every word after it
            "--profile",
            "workflow/profiles/slurm",
            "--jobs",
            "4",
            *CPU_ONLY,
        ],
        repo,
        timeout=660,
        check=False,
        extra_env={**slurm_conf, "DKP_TRAIN_PROCS": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = (repo / "logs/train_teacher/seed-0.log").read_text()
    assert "(2 ranks)" in log, log[-2000:]
    assert (repo / "results/train/seed-0/teacher.csv").is_file()
