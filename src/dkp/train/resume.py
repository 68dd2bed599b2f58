"""Resume folders: every epoch of a training phase, with every RNG state, kept outside DVC's
outputs.

DVC deletes a stage's outputs before it runs, so resume state lives in
`.dkp-cache/train/<stage>/<key>/`, where key hashes everything the stage's result
depends on: the seed, the params it reads, the input data files' digests, the training
code. Seeds never share a folder, so they may train side by side.
A run killed at any point restarts from its last complete epoch (each file is
written atomically) and ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch
import yaml

from .. import runtime
from ..atomic import atomic_path, write_json
from ..checkpoints import file_digest
from ..errors import DkpError
from ..layout import TRAIN_CACHE

CACHE_ROOT = TRAIN_CACHE
# The code each training stage runs, relative to the dkp package: the one list behind both the
# resume key (an edit invalidates the stage's resume folders) and the stage's code deps in
# dvc.yaml (tests/test_workflow.py checks that they agree).
STAGE_CODE = {
    "teacher": ("train", "models", "checkpoints.py", "framestore.py", "layout.py", "runtime.py"),
    "student": (
        "train",
        "models",
        "checkpoints.py",
        "framestore.py",
        "layout.py",
        "runtime.py",
        "sampling.py",
        "configs.py",
    ),
}


# the dvc.yaml stage whose declared params (the list tests/test_workflow.py audits against what
# the code reads) key each training stage's resume folders
DVC_STAGE = {"teacher": "train-teacher", "student": "train-student"}


def _dvc_stages() -> dict:
    """dvc.yaml's stages: the project's (the working directory's), else the checkout dkp runs
    from."""
    for path in (Path("dvc.yaml"), Path(__file__).resolve().parents[3] / "dvc.yaml"):
        if path.is_file():
            return yaml.safe_load(path.read_text())["stages"]
    raise DkpError("dvc.yaml not found: run the training stages from the project's root")


def stage_params(p: dict, stage: str) -> dict:
    """The params a training stage declares in dvc.yaml, with their values: what its resume key
    hashes. run.precision as it resolves on this machine (auto may differ between machines)."""
    entry = _dvc_stages()[DVC_STAGE[stage]]
    out = {}
    for key in entry.get("do", entry)["params"]:
        node = p
        for part in key.split("."):
            node = node[part]
        out[key] = node
    if "run.precision" in out:
        device = runtime.resolve_device(p["run"]["device"])
        out["run.precision"] = runtime.resolve_precision(p["run"]["precision"], device)
    return out


def code_digest(stage: str) -> str:
    """sha256 over the stage's STAGE_CODE files (a folder: its *.py files), names and bytes."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for entry in STAGE_CODE[stage]:
        paths = sorted((root / entry).glob("*.py")) if (root / entry).is_dir() else [root / entry]
        for path in paths:
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def resume_dir(p: dict, stage: str, seed: int, inputs: list[str | Path]) -> Path:
    """The resume folder for this stage, seed, the params it declares (stage_params) and input
    files; created, with a key.json."""
    key = {
        "seed": int(seed),
        "params": stage_params(p, stage),
        "inputs": {str(f): file_digest(f) for f in sorted(map(str, inputs))},
        "code": code_digest(stage),
        "torch": torch.__version__,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = CACHE_ROOT / stage / digest
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "key.json").exists():
        write_json(folder / "key.json", key)
    return folder


def rng_states(rng: np.random.Generator) -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": rng.bit_generator.state,
    }


def set_rng_states(state: dict, rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    rng.bit_generator.state = state["generator"]


def save(folder: Path, tag: str, payload: dict) -> None:
    with atomic_path(folder / f"{tag}.pt") as tmp:
        torch.save(payload, tmp)


def load(folder: Path, tag: str) -> dict | None:
    """The last complete checkpoint of a phase, or None. Our own file: full unpickling is safe."""
    path = folder / f"{tag}.pt"
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
