"""The paper-scale presets in configs/ and the GPU check script.

Every preset passes the project's own validation (schema and cross-key rules), has exactly
the keys of params.yaml, and each of its /path/to/ placeholders stops the real command line
with one line naming the key until it points at something that exists. bench/gpu_check.sh
parses and its CPU dry run goes through every step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dkp import configs, frames, resources, sampling
from dkp import params as params_mod

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "configs").glob("*.yaml"))
PLACEHOLDER = "/path/to/"
# the path keys in the order dkp.params checks them; the folder among them
PATH_KEYS = [
    "data.annotations",
    "data.videos",
    "data.class_list",
    "teacher.pretrained",
    "student.pretrained",
]
FOLDERS = {"data.videos"}


def _load(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _keys(node: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in node.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


def _get(p: dict, key: str):
    for part in key.split("."):
        p = p[part]
    return p


def _set(p: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        p = p[part]
    p[last] = value


def _dkp(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dkp", *args], cwd=workdir, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def imagenet_files(tmp_path_factory) -> dict:
    """arch -> a .pth in torchvision's format for the presets' networks (width 1, 1000 classes)."""
    import torch

    from dkp.models import build_backbone

    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for arch in ("resnet50", "mobilenet_v2"):
        out[arch] = folder / f"{arch}.pth"
        torch.save(build_backbone({"arch": arch, "width": 1.0}, 1000).state_dict(), out[arch])
    return out


def test_presets_exist():
    assert {p.name for p in PRESETS} >= {"activitynet.yaml", "mini-kinetics.yaml"}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_validates_against_the_schema(preset):
    params_mod.validate(_load(preset), check_paths=False)  # raises ParamError with the one line


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_has_exactly_the_keys_of_params_yaml(preset):
    want, got = _keys(_load(REPO / "params.yaml")), _keys(_load(preset))
    assert got == want, f"missing {sorted(want - got)}, extra {sorted(got - want)}"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_is_paper_scale_on_real_data(preset):
    p = _load(preset)
    assert p["data"]["source"] in ("activitynet", "kinetics")
    assert (p["teacher"]["arch"], p["student"]["arch"]) == ("resnet50", "mobilenet_v2")
    for net in ("teacher", "student"):
        assert (p[net]["width"], p[net]["input_size"], p[net]["normalize"]) == (
            1.0,
            224,
            "imagenet",
        )
        assert p[net]["pretrained"].startswith(PLACEHOLDER) and p[net]["pretrained"].endswith(
            ".pth"
        )
    assert p["frames"]["crop"] == 224 and p["frames"]["size"] >= 224
    assert not p["train"]["augment"]["rot90"] and not p["train"]["augment"]["channel_shuffle"]
    assert p["run"]["device"] == "auto"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_each_placeholder_stops_the_cli_with_one_line_naming_it(preset, tmp_path, imagenet_files):
    """Set the placeholders one at a time, in the order they are checked: each run before
    the last names the next one still unset; with all set (the weights: torchvision-format files
    of the preset's networks) the file is valid."""
    p = _load(preset)
    weights = {net: imagenet_files[p[net]["arch"]] for net in ("teacher", "student")}
    pending = [k for k in PATH_KEYS if str(_get(p, k) or "").startswith(PLACEHOLDER)]
    assert {"data.annotations", "data.videos", "teacher.pretrained", "student.pretrained"} <= set(
        pending
    )
    for i, key in enumerate(pending + [None]):
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        r = _dkp(tmp_path, "validate-params")
        if key is None:
            assert (r.returncode, r.stdout, r.stderr) == (0, "params.yaml: valid\n", "")
            break
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stderr == (
            f"dkp validate-params: invalid parameter: {key}: expected an existing path, "
            f"found {_get(p, key)!r} (no such file or folder)\n"
        )
        target = tmp_path / f"set-{i}"
        if key in FOLDERS:
            target.mkdir()
        elif key.endswith(".pretrained"):  # read and matched against the network: real weights
            target = weights[key.split(".")[0]]
        else:
            target.write_text("")
        _set(p, key, str(target))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_a_stage_stops_on_the_placeholder_before_writing(preset, tmp_path):
    (tmp_path / "params.yaml").write_text(preset.read_text())
    r = _dkp(tmp_path, "data")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(
        "dkp data: invalid parameter: data.annotations: expected an existing path"
    )
    assert sorted(x.name for x in tmp_path.iterdir()) == ["params.yaml"]


def test_a_path_of_the_wrong_kind_is_one_line(tmp_path):
    p = _load(REPO / "configs" / "activitynet.yaml")
    (tmp_path / "videos").mkdir()
    (tmp_path / "w.pth").write_text("")
    for key in PATH_KEYS:
        if str(_get(p, key) or "").startswith(PLACEHOLDER):
            _set(p, key, "videos" if key in FOLDERS else "w.pth")
    for key, value, message in [
        ("data.annotations", "videos", "expected a file, found a folder 'videos'"),
        ("data.videos", "w.pth", "expected a folder, found a file 'w.pth'"),
    ]:
        q = yaml.safe_load(yaml.safe_dump(p))
        _set(q, key, value)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(q, sort_keys=False))
        r = _dkp(tmp_path, "validate-params")
        assert r.returncode == 2
        assert r.stderr == f"dkp validate-params: invalid parameter: {key}: {message}\n"


GPU_CHECK = REPO / "bench" / "gpu_check.sh"


def test_gpu_check_parses():
    r = subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_gpu_check_dry_run_goes_through_every_step(tmp_path):
    """--dry-run: nothing installed, device cpu, one seed of the tiny pipeline, a step of each
    network at 64 px from memory and through the loader, a DKP-phase step and a DDP step on 2
    processes."""
    env = dict(os.environ, PYTHON=sys.executable, WORK=str(tmp_path / "work"))
    r = subprocess.run(
        ["bash", str(GPU_CHECK), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    for stage in (
        "synthesize",
        "data",
        "frames",
        "train-teacher --seed 0",
        "train-student --seed 0",
        "features --seed 0",
        "sweep --seed 0",
        "evaluate",
        "figures",
    ):
        assert f"dkp {stage} ok" in out
    for net in ("teacher resnet50      64 px", "student mobilenet_v2  64 px"):
        # each network fed from host memory and through the real loader's workers
        assert f"{net},    2 frames a step, memory (0 workers)" in out
        assert f"{net},    2 frames a step, loader (2 workers)" in out
    assert out.count("images/s") == 5  # 4 single-process steps, the 2-process DDP step
    # one DKP-phase step and one DDP step on 2 processes (gloo), with the stages' cuDNN settings
    assert "  dkp phase: 1 video(s) x (n_s 4 + n_t 2) = 6 frames at 64 px: " in out
    assert "  ddp: 2 processes x 2 of 4 frames at 64 px: " in out
    assert out.count("cuDNN deterministic False, benchmark False") == 2  # the CPU's: unset
    assert not list((tmp_path / "work").glob("store-*")), "the loader's frame store was left"
    assert (tmp_path / "work" / "results" / "metrics.json").exists()


# --- fed as named at paper scale ------------------------------------------------------------------

NATIVE_FPS = 25.0  # the lower of the real datasets' usual 25-30 fps


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_configuration_is_fed_as_named_at_the_presets(preset):
    """With the preset's extraction (frames.per_video_count: sweep) of real video at 25 fps, every
    configuration the figures plot is fed exactly the distinct n_s and n_t it names in at least
    95 % of the reference's videos."""
    p = _load(preset)
    cfgs = [c for c in configs.build(p) if c.figure in ("s1", "s2") or c.method == "teacher"]
    demand = frames.extraction_demand(p)
    shares = {}
    durations = resources.reference_durations(p["data"]["source"])
    for d in durations[:: max(1, len(durations) // 1000)]:  # 1,000 evenly over the quantiles
        native = np.arange(max(1, int(d * NATIVE_FPS))) / NATIVE_FPS
        kept = frames.kept_indices(native, d, p["frames"]["fps"], demand)
        stored = native[kept]
        for c in cfgs:
            ns, nt = sampling.role_counts(c, d)
            ok = all(
                n == 0 or len(sampling.config_indices(c, role, stored, d)) == n
                for role, n in (("s", ns), ("t", nt))
            )
            shares.setdefault(c.name, []).append(ok)
    short = {k: round(float(np.mean(v)), 3) for k, v in shares.items() if np.mean(v) < 0.95}
    assert not short, short
