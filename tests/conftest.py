"""Shared fixtures: repository paths and the tiny parameter set."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "params-tiny.yaml"
BIN = REPO / ".venv" / "bin"

os.environ.setdefault("DKP_NO_PROGRESS", "1")
if BIN.exists():  # tests call dkp/dvc/snakemake as a user would, from the project's venv
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"


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
