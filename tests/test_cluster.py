"""A cluster's view of the pipeline: the frame store's size at the presets, each torch job's
memory and GPUs (dkp.resources, dkp.gpus, the Snakefile's resources), and the commands that start
training over several GPUs or Slurm nodes (dkp.launch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from dkp import configs as configs_mod
from dkp import gpus, launch, resources, sampling

REPO = Path(__file__).resolve().parents[1]


def _preset(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())


# ---- the frame store on disk --------------------------------------------------------------------


def test_frames_per_video_feed_every_configuration_its_distinct_frames():
    """m_v = max(ceil(fps L), n_req(L)), n_req the largest nominal count of any configuration."""
    p = _preset("activitynet")
    built = configs_mod.build(p)
    for length in (1.6, 7.8, 29.9, 95.0, 96.4, 118.0, 236.9, 755.1):
        n_req = max(max(sampling.role_counts(c, length)) for c in built)
        at_fps = max(1, int(np.ceil(round(length - 0.5, 9))))
        assert resources.frames_per_video(p, length)[0] == max(at_fps, n_req)
    assert resources.frames_per_video(p, 60.0)[0] == 96  # adaptive: ratio 8 x n_t 12
    assert resources.frames_per_video(p, 755.1)[0] == 755  # 1 fps: more than 8 x round(75.5) = 608


@pytest.mark.parametrize(
    "name, source, limit_gb",
    [("activitynet", "activitynet", 60), ("mini-kinetics", "kinetics", 100)],
)
def test_preset_frame_stores_fit(name, source, limit_gb):
    """At the presets (JPEG), the store of the reference data sets fits its budget; raw frames
    would not."""
    p = _preset(name)
    assert p["frames"]["format"] == "jpeg"
    durations = resources.reference_durations(source)
    jpeg = resources.store_size(p, durations)
    assert jpeg["GB"] <= limit_gb, jpeg
    raw = resources.store_size({**p, "frames": {**p["frames"], "format": "npy"}}, durations)
    assert raw["frames"] == jpeg["frames"] and raw["GB"] > 4 * limit_gb
    assert raw["frame_bytes"] == 224 * 224 * 3


def test_default_params_keep_the_raw_store():
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    assert p["frames"]["format"] == "npy"


# ---- memory requests ----------------------------------------------------------------------------


def test_memory_grows_with_ranks_frames_and_gpus():
    p = _preset("activitynet")
    durations = resources.reference_durations("activitynet")
    counts = {
        "train": 9649,
        "monitor": 4728,
        "longest": float(durations.max()),
        "frames": int(resources.frames_per_video(p, durations).sum()),
    }
    for stage in ("train-teacher", "train-student"):
        one, four = (resources.train_mem_mb(p, stage, counts, r, cuda=True) for r in (1, 4))
        assert 3 * one < four < 5 * one  # a node's memory follows its ranks
        # on the CPU the activations are on the host, on GPUs they are not
        assert resources.train_mem_mb(p, stage, counts, 1, cuda=False) > one
    more = {**p, "train": {**p["train"], "loader": {"workers": 8, "prefetch": 8}}}
    assert resources.train_mem_mb(more, "train-student", counts, 1, True) > resources.train_mem_mb(
        p, "train-student", counts, 1, True
    )
    # the monitor frames are streamed: 10x more of them cost their features, not their pixels
    many = {**p, "train": {**p["train"], "val_frames_per_video": 40}}
    grow = resources.train_mem_total(many, "train-teacher", counts) - resources.train_mem_total(
        p, "train-teacher", counts
    )
    assert 0 < grow < 36 * 4728 * 2048 * 4 * 3 / 2**20 + 1


# ---- one GPU per local job ----------------------------------------------------------------------

_CLAIM = """
import json, os, sys, time
from dkp import gpus
line = gpus.setup(sys.argv[1])
print(json.dumps({"line": line, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}), flush=True)
time.sleep(float(sys.argv[2]))
"""


def _job(stage: str, hold: float, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CLAIM, stage, str(hold)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_local_jobs_take_distinct_gpus_and_wait_for_a_free_one(tmp_path):
    """Three jobs of one GPU on a machine of two (CUDA_VISIBLE_DEVICES=0,1): the first two get GPU
    0 and GPU 1, the third waits until one of them ends and gets its GPU; a job whose rule asks
    for none sees no GPU; outside Snakemake (no DKP_JOB_GPUS) nothing changes."""
    spec = json.dumps({"train-teacher": 1, "features": 1, "sweep": 0})
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "0,1",
        gpus.ENV: spec,
        gpus.LOCKS_ENV: str(tmp_path / "locks"),
    }
    env.pop("SLURM_JOB_ID", None)
    first = _job("train-teacher", 3.0, env)
    assert json.loads(first.stdout.readline())["visible"] == "0"
    second = _job("features", 6.0, env)
    assert json.loads(second.stdout.readline())["visible"] == "1"
    start = time.monotonic()
    third = _job("train-teacher", 0.0, env)
    out, err = third.communicate(timeout=60)
    seen, waited = json.loads(out.splitlines()[0]), time.monotonic() - start
    assert seen["visible"] == "0" and seen["line"].startswith("dkp train-teacher: GPU 0 of 0,1")
    assert waited > 1.0 and "waiting for 1 free GPU(s) of 0,1" in err
    assert first.wait(30) == 0 and second.wait(30) == 0
    none = _job("sweep", 0.0, env).communicate(timeout=60)[0]
    assert json.loads(none.splitlines()[0])["visible"] == ""
    outside = {k: v for k, v in env.items() if k != gpus.ENV}
    plain = json.loads(_job("train-teacher", 0.0, outside).communicate(timeout=60)[0])
    assert plain == {"line": None, "visible": "0,1"}
    under_slurm = {**env, "SLURM_JOB_ID": "7"}  # the allocation chose the GPUs already
    assert json.loads(_job("features", 0.0, under_slurm).communicate(timeout=60)[0])["line"] is None


# ---- starting the ranks -------------------------------------------------------------------------

TINY = yaml.safe_load((REPO / "tests" / "params-tiny.yaml").read_text())
ARGV = ["/venv/bin/dkp", "train-teacher", "--seed", "0"]


def test_first_host_of_slurm_node_lists():
    assert launch.first_host("localhost") == "localhost"
    assert launch.first_host("gpu[003-004,007],cpu1") == "gpu003"
    assert launch.first_host("node7,node9") == "node7"
    assert launch.first_host("a[12,3]") == "a12"


def test_launch_commands_from_the_environment():
    p = TINY
    assert launch.command(p, ARGV, {}) is None  # one process, no GPU
    assert launch.command(p, ARGV, {"WORLD_SIZE": "2", "DKP_TRAIN_PROCS": "2"}) is None
    two = launch.command(p, ARGV, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert two[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *ARGV]
    cpu = {**p, "run": {**p["run"], "device": "cpu"}}
    assert launch.command(cpu, ARGV, {"CUDA_VISIBLE_DEVICES": "0,1"}) is None
    # a Slurm job of 2 nodes x 4 GPUs: its one process starts a task per node ...
    job = {
        "SLURM_JOB_ID": "123456",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_NNODES": "1",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
    }
    srun = launch.command(p, ARGV, job)
    assert srun[:6] == [
        "srun",
        "--overlap",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
    ]
    assert srun[-len(ARGV) :] == ARGV and f"--export=ALL,{launch.MARK}=1" in srun
    # ... and each task is its node's torchrun agent
    task = {**job, "SLURM_NTASKS": "2", "SLURM_NNODES": "2", "SLURM_PROCID": "1", launch.MARK: "1"}
    agent = launch.command(p, ARGV, task)
    assert agent[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=4",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=gpu07:{29500 + 3456}",
        "--rdzv_id=dkp-123456",
        *ARGV,
    ]
    # marked, the one process of a multi-node job runs as one node rather than srun again
    assert launch.command(p, ARGV, {**job, launch.MARK: "1"})[3] == "--standalone"


# ---- the Snakefile's resources ------------------------------------------------------------------


@pytest.mark.slow
def test_snakemake_threads_and_gpus_follow_set_resources(tmp_path):
    """A dry run: a training rule given 4 GPUs on a 4-GPU machine asks for 4x the threads of one
    GPU; a rule set to gpu=0 asks for none; mem_mb waits for data/manifest.csv."""
    from workflow_repos import make_repo, sh

    repo = make_repo(tmp_path / "repo")
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    out = sh(
        [
            "snakemake",
            "-n",
            "--profile",
            "workflow/profiles/default",
            "--cores",
            "64",
            "--set-resources",
            "train_teacher:gpu=4",
            "features:gpu=0",
        ],
        repo,
        extra_env=env,
    ).stdout
    jobs = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        threads = [ln for ln in block.splitlines() if ln.strip().startswith("threads:")]
        res = [ln for ln in block.splitlines() if ln.strip().startswith("resources:")]
        jobs.setdefault(rule, (threads[0].split()[-1] if threads else "1", res[0] if res else ""))
    per = TINY["run"]["threads"] + TINY["train"]["loader"]["workers"]
    assert jobs["train_teacher"][0] == str(4 * per) and "gpu=4" in jobs["train_teacher"][1]
    assert jobs["train_student"][0] == str(per) and "gpu=1" in jobs["train_student"][1]
    assert "gpu=0" in jobs["features"][1]
    assert "mem_mb=<TBD>" in jobs["train_teacher"][1]
