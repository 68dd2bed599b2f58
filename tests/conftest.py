"""Shared fixtures: repository paths, the tiny parameter set, and the tiny pipeline with every
bad input (run once per session, shared by test_bad_inputs.py and test_frames.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dkp.cli import PIPELINE

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "params-tiny.yaml"
BIN = REPO / ".venv" / "bin"

os.environ.setdefault("DKP_NO_PROGRESS", "1")
# The suite runs two workers on two cores, each starting 2-thread torch processes: more threads
# than cores. OpenMP threads that spin while waiting for work then burn the cores the others
# need (a fifth of the suite's CPU time, bench/README "CPUs the test suite has passed on");
# passive waiting changes no result. Set before any process here loads torch's OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if BIN.exists():  # tests call dkp/dvc/snakemake as a user would, from the project's venv
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"


def pytest_addoption(parser):
    parser.addoption(
        "--skip-slurm",
        action="store_true",
        help="report the tests that need a Slurm cluster as skipped (make test)",
    )


# Fixtures that build seconds of shared work once per session or module (a tiny pipeline run,
# the tiny training data, a rendered dataset), in each process that runs a test using one,
# directly or through another fixture. Every such test goes to one pytest-xdist worker, grouped
# by the fixture's name (make test: `--dist loadgroup`), so each is built once a run.
SHARED_BUILDS = ("tiny_dvc_repro", "tiny_data", "bad_inputs_pipeline", "two_runs")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the items
def pytest_collection_modifyitems(config, items):
    for item in items:
        used = [f for f in SHARED_BUILDS if f in getattr(item, "fixturenames", ())]
        if used:
            item.add_marker(pytest.mark.xdist_group(used[0]))
    if config.getoption("--skip-slurm"):
        skip = pytest.mark.skip(reason="minutes of Slurm job start-up: run with `make test-slurm`")
        for item in items:
            if "slurm" in item.keywords:
                item.add_marker(skip)


# the policy pytest started with: every process a test starts inherits the test thread's
SCHEDULING = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)


@pytest.fixture(autouse=True)
def scheduling_unchanged():
    """A test, or a fixture it uses, must leave the test process's scheduling policy as it found
    it (fixtures/media.scheduling_kept says what a real-time policy did to the suite)."""

    def now():
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority

    assert now() == SCHEDULING, f"a fixture set scheduling (policy, priority) {now()}"
    yield
    assert now() == SCHEDULING, f"the test set scheduling (policy, priority) {now()}"


@pytest.fixture(autouse=True)
def fp32_in_process(monkeypatch):
    """Network arithmetic inside the test process in fp32, whatever the CPU. run.precision auto is
    bf16 autocast on CPUs with native bf16 (AMX, AVX512-BF16), so a test comparing two ways of
    computing one result would compare bf16 rounding on those machines and arithmetic elsewhere.
    Forked workers inherit it; stages run as `dkp` commands, or in-process through
    runtime.setup, use their params' run.precision."""
    from dkp import runtime

    monkeypatch.setattr(runtime, "_precision", "fp32")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_params() -> dict:
    with open(TINY) as fh:
        return yaml.safe_load(fh)


@pytest.fixture
def tiny_workdir(tmp_path) -> Path:
    """A scratch working directory holding params.yaml = the tiny set (stages run with cwd here)."""
    shutil.copy(TINY, tmp_path / "params.yaml")
    return tmp_path


@pytest.fixture(scope="session")
def tiny_dvc_repro(tmp_path_factory) -> tuple[Path, float]:
    """(repository where `dvc repro` ran on the tiny params, seconds it took): read-only, copy
    it to change it (tests/workflow_repos.py)."""
    from workflow_repos import dvc_reproduced

    return dvc_reproduced(tmp_path_factory)


# every stage bad_inputs_pipeline runs, in order: all but synthesize (it writes its own data)
PIPELINE_STAGES = [s for s in PIPELINE if s != "synthesize"]


@pytest.fixture(scope="session")
def bad_inputs_pipeline(tmp_path_factory):
    """The tiny synthetic dataset read as ActivityNet, plus one video or annotation row of every
    bad kind (tests/fixtures/bad_inputs.py, written with PyAV by tests/fixtures/media.py) and one
    valid video shorter than the frames the sweep's configurations ask for. It runs once per
    session, uninterrupted, through every stage from `dkp data` to `dkp figures` (one epoch each;
    in one process, through dkp.cli.main), and is the reference the interrupted runs, separate
    `dkp` processes killed with SIGKILL, must reproduce byte for byte. Everything runs on real
    files, real decord and dkp's command line. Returns the work folder and its parameters."""
    from fixtures import media as M
    from fixtures.bad_inputs import _annotations, _write_bad_videos, dkp

    root = tmp_path_factory.mktemp("bad-inputs")
    p = yaml.safe_load(TINY.read_text())
    p["data"]["tune_subset"] = None  # training and validation only, as the real ActivityNet
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = dkp(root, "synthesize")
    assert res.returncode == 0, res.stderr
    videos = root / "videos"
    shutil.copytree(root / p["data"]["videos"], videos)
    _write_bad_videos(videos)
    leaves, database = _annotations(json.loads((root / p["data"]["annotations"]).read_text()))
    M.write_activitynet(root / "anet.json", leaves, database)
    p["data"].update(source="activitynet", annotations=str(root / "anet.json"), videos=str(videos))
    for phase in ("teacher", "student", "plain_student"):  # exactness needs no accuracy
        p["train"][phase]["epochs"] = 1
    p["run"]["seeds"] = [0]  # one seed: these tests are about bad inputs, not seeds
    # frames.fps alone: the expected frame counts of the bad and short videos below are 1 fps's
    # (the sweep's per-video counts are test_frames' and test_workflow's)
    p["frames"]["per_video_count"] = "fps"
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    # every stage through dkp's command-line entry point, in one process so torch is imported once
    runner = (
        "import sys; from dkp.cli import main, PER_SEED\n"
        f"for stage in {PIPELINE_STAGES!r}:\n"
        "    print('stage', stage, file=sys.stderr, flush=True)\n"
        "    seed = ['--seed', '0'] if stage in PER_SEED else []\n"
        "    rc = main([stage, '--params', 'params.yaml', *seed])\n"
        "    if rc: sys.exit(rc)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", runner], cwd=root, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return root, p
