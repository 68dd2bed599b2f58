"""Invalid parameters, one key at a time and across keys: one line naming the key, exit status 2,
nothing written.

Every case runs the real command line (`dkp validate-params`, and `dkp data`) as a
subprocess on a params file derived from tests/params-tiny.yaml.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml


def _set(path: str, value):
    def edit(p):
        *parents, key = path.split(".")
        node = p
        for k in parents:
            node = node[k]
        node[key] = value

    return edit


def _pop(path: str):
    def edit(p):
        *parents, key = path.split(".")
        node = p
        for k in parents:
            node = node[k]
        node.pop(key)

    return edit


def _rename(path: str, new: str):
    def edit(p):
        *parents, key = path.split(".")
        node = p
        for k in parents:
            node = node[k]
        node[new] = node.pop(key)

    return edit


def _activitynet_missing_file(p):
    p["data"].update(
        source="activitynet", annotations="nowhere/activity_net.v1-3.min.json", videos="."
    )


# (case, edit of the tiny params or raw file text, expected fragment of the one-line message)
CASES = [
    ("wrong type", _set("frames.fps", "fast"), "frames.fps: expected number, found str 'fast'"),
    (
        "boolean for integer",
        _set("frames.workers", True),
        "frames.workers: expected integer, found bool",
    ),
    ("out of range", _set("frames.size", 0), "frames.size: expected a value >= 16, found 0"),
    (
        "below minimum",
        _set("data.synthetic.noise", -1),
        "data.synthetic.noise: expected a value >= 0",
    ),
    (
        "above maximum",
        _set("data.synthetic.num_classes", 500),
        "data.synthetic.num_classes: expected a value <= 20, found 500",
    ),
    (
        "not in enum",
        _set("run.device", "gpu"),
        "run.device: expected one of ['auto', 'cpu', 'cuda'], found 'gpu'",
    ),
    ("unknown key", _set("frames.colour", 1), "unknown key 'frames.colour'"),
    ("typo in a key", _rename("frames.workers", "wokers"), "did you mean 'frames.workers'?"),
    ("typo in a group", _rename("frames", "frmes"), "unknown key 'frmes' (did you mean 'frames'?)"),
    ("missing key", _pop("frames.shards"), "missing key 'frames.shards'"),
    ("missing group", _pop("dkp"), "missing key 'dkp'"),
    ("list item type", _set("sweep.s1.ratios", [4, "x"]), "sweep.s1.ratios.1: expected integer"),
    (
        "crop above size",
        _set("frames.crop", 128),
        "frames.crop: expected <= frames.size (32), found 128",
    ),
    (
        "repeated seed",
        _set("run.seeds", [0, 1, 0]),
        "run.seeds: expected distinct items, found [0, 1, 0]",
    ),
    ("no seed", _set("run.seeds", []), "run.seeds: expected minItems 1, found []"),
    ("negative seed", _set("run.seeds", [0, -1]), "run.seeds.1: expected a value >= 0, found -1"),
    (
        "old single seed",
        _rename("run.seeds", "seed"),
        "unknown key 'run.seed' (did you mean 'run.seeds'?)",
    ),
    (
        "missing file path",
        _activitynet_missing_file,
        "data.annotations: expected an existing path, found 'nowhere/activity_net.v1-3.min.json'",
    ),
    ("invalid YAML", "frames: [unclosed\n  size: 3\n", "not valid YAML at line 2"),
    ("empty file", "", "expected a mapping of parameter groups"),
]


def _write(folder, tiny_params, edit) -> str:
    if isinstance(edit, str):
        text = edit
    else:
        params = copy.deepcopy(tiny_params)
        edit(params)
        text = yaml.safe_dump(params, sort_keys=False)
    (folder / "bad.yaml").write_text(text)
    return "bad.yaml"


def _dkp(folder, *args):
    return subprocess.run(["dkp", *args], cwd=folder, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case,edit,expected", CASES, ids=[c[0] for c in CASES])
def test_invalid_params_one_line_exit_2(tmp_path, tiny_params, case, edit, expected):
    name = _write(tmp_path, tiny_params, edit)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _dkp(tmp_path, "validate-params", "--params", name)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dkp validate-params: invalid parameter: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _kinetics_without_class_list(p):
    p["data"].update(
        source="kinetics", annotations="params.yaml", videos=".", class_list=None, tune_subset=None
    )


# Cross-key rules of dkp.params, one key checked against another or against the files (CASES above
# check keys one at a time): (case, edit of the tiny params, expected fragment of the one line)
CROSS_KEY_CASES = [
    (
        "shot lengths reversed",
        _set("data.synthetic.shot_seconds", [16, 6]),
        "data.synthetic.shot_seconds: expected [shortest, longest] with shortest <= longest, found "
        "[16, 6]",
    ),
    (
        "synthetic data outside data/synthetic",
        _set("data.videos", "/srv/videos"),
        "data.videos: expected a path under data/synthetic/ for source synthetic",
    ),
    (
        "kinetics without class list",
        _kinetics_without_class_list,
        "data.class_list: expected the Mini-Kinetics class list file for source kinetics, found "
        "null",
    ),
    (
        "unknown s3 configuration",
        _set("sweep.s3_config", "dste_ns20_nt6"),
        "sweep.s3_config: expected a configuration name declared by sweep, found 'dste_ns20_nt6' "
        "(did you mean",
    ),
    (
        "unknown operating point",
        _set("evaluate.operating_points", ["teacher_nt5", "nope"]),
        "evaluate.operating_points[1]: expected a configuration name declared by sweep, found "
        "'nope'",
    ),
    (
        "missing pretrained weights",
        _set("teacher.pretrained", "weights/resnet18.pth"),
        "teacher.pretrained: expected an existing path, found 'weights/resnet18.pth'",
    ),
]


@pytest.mark.parametrize("case,edit,expected", CROSS_KEY_CASES, ids=[c[0] for c in CROSS_KEY_CASES])
def test_cross_key_rule_is_one_line_exit_2(tmp_path, tiny_params, case, edit, expected):
    name = _write(tmp_path, tiny_params, edit)
    result = _dkp(tmp_path, "validate-params", "--params", name)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.startswith("dkp validate-params: invalid parameter: ")
        and expected in result.stderr
    )
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bad.yaml"]


def test_valid_tiny_params_pass(tiny_workdir):
    result = _dkp(tiny_workdir, "validate-params", "--params", "params.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_missing_params_file(tmp_path):
    result = _dkp(tmp_path, "validate-params", "--params", "absent.yaml")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "dkp validate-params: invalid parameter: params file 'absent.yaml' not found"
    )


STAGE_CASES = [c for c in CASES if c[0] in ("typo in a key", "missing file path", "invalid YAML")]


@pytest.mark.parametrize("case,edit,expected", STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_stage_with_invalid_params_writes_nothing(tmp_path, tiny_params, case, edit, expected):
    """A real stage stops before any work: no data/ or results/ folder appears."""
    name = _write(tmp_path, tiny_params, edit)
    result = _dkp(tmp_path, "data", "--params", name)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.slow
def test_built_wheel_validates_params_outside_the_checkout(tmp_path):
    """dkp installed from its wheel (not -e) finds its schema and reference data as package data."""
    import shutil
    import sysconfig
    import venv
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    # build from a copy: setuptools writes build/ and egg-info beside the sources
    src = tmp_path / "src-copy"
    shutil.copytree(
        repo / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("dkp-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dkp/params.schema.yaml" in names and "dkp/synthetic/activitynet_v13_stats.json" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # dkp's dependencies from the test environment (a plain path entry: its editable dkp finder is
    # not loaded)
    Path(site, "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(repo / "params.yaml", work / "params.yaml")
    where = subprocess.run(
        [str(python), "-c", "import dkp; print(dkp.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(env_dir)), where
    r = subprocess.run(
        [str(env_dir / "bin" / "dkp"), "validate-params", "--params", "params.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "params.yaml: valid" in r.stdout, r.stderr


def test_checking_no_pretrained_weights_loads_no_torch(tiny_workdir):
    """validate-params and synthesize check `pretrained` files with torch; with none set they
    must not pay torch's import (1-2 s a process)."""
    code = (
        "import sys; from dkp.cli import main; "
        "code = main(['validate-params', '--params', 'params.yaml']); "
        "print(code, 'torch' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tiny_workdir, capture_output=True, text=True
    )
    assert run.stdout.split()[-2:] == ["0", "False"], run.stdout + run.stderr
