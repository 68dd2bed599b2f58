"""Sharing results: `dvc push` to a remote, then a fresh clone pulls them and recomputes nothing."""

from __future__ import annotations

import shutil

import pytest
import yaml
from workflow_repos import TINY, dvc_status, sh, stages_run

pytestmark = pytest.mark.slow


def test_fresh_clone_pulls_results_without_recomputing(tiny_dvc_repro, tmp_path):
    reproduced, _ = tiny_dvc_repro
    origin = tmp_path / "origin"
    shutil.copytree(reproduced, origin, symlinks=True)
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], origin)
    sh(["git", "add", "-A"], origin)
    sh(["git", "commit", "-q", "-m", "results of the tiny pipeline"], origin)
    sh(["dvc", "push"], origin)
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    seeds = yaml.safe_load(TINY.read_text())["run"]["seeds"]
    assert not (
        clone / "models" / f"seed-{seeds[0]}" / "teacher.pt"
    ).exists()  # git alone has no cached outputs
    sh(["dvc", "pull"], clone)
    assert dvc_status(clone) == {}
    assert stages_run(sh(["dvc", "repro"], clone).stdout) == []
    models = [f"models/seed-{n}/{net}.pt" for n in seeds for net in ("teacher", "student")]
    for rel in (
        *models,
        "data/manifest.csv",
        "results/metrics.json",
        "results/curves.csv",
        "results/figures/s1.png",
    ):
        assert (clone / rel).read_bytes() == (origin / rel).read_bytes(), rel
