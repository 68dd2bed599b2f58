"""Costs measured with FlopCounterMode on the actual modules (MACs = FLOPs / 2).

Tolerances: MAC counts are integers, exact in float64; GFLOPs divide them by 1e9 and add a
few, so any two ways of computing one cost agree within 1e-15 relative on every CPU (rel=1e-12,
1e-9 and pytest.approx's default 1e-6 are far above). The field figures at 224 px and the
4x of doubling the input side are properties of the architectures, not of rounding: their
tolerances are the published figures' precision (4.1, 1.8, 0.30 GFLOPs) and the stem's share.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import torch
import yaml

from dkp.cli import main as dkp_main
from dkp.flops import CostModel, backbone_macs, count_macs
from dkp.models import build_backbone
from dkp.models.dkp import DKP


def printed_gflops(capsys, *argv) -> float:
    assert dkp_main(["flops", *argv]) == 0
    out = capsys.readouterr().out
    return float(re.search(r": ([0-9.]+) GFLOPs per frame", out).group(1))


@pytest.mark.parametrize(
    "backbone,expected,tol",
    [("resnet50", 4.1, 0.1), ("resnet18", 1.8, 0.1), ("mobilenet_v2", 0.30, 0.02)],
)
def test_field_figures_at_224(capsys, backbone, expected, tol):
    assert abs(printed_gflops(capsys, "--backbone", backbone, "--size", "224") - expected) <= tol


@pytest.mark.parametrize(
    "spec,size",
    [
        ({"arch": "resnet18", "width": 0.5}, 64),
        ({"arch": "resnet18", "width": 0.125}, 64),
        ({"arch": "mobilenet_v2", "width": 0.35}, 64),
        ({"arch": "resnet50", "width": 1.0}, 96),
    ],
)
def test_meta_device_count_equals_the_count_on_the_real_module(spec, size):
    """backbone_macs counts a meta-device copy: the same total as the module run on real
    frames, and the module itself is left as it was (device, training mode)."""
    model = build_backbone(spec, 20).train()
    real = count_macs(model.eval().embed, torch.zeros(1, 3, size, size))
    model.train()
    assert backbone_macs(model, size) == real
    assert model.training and next(model.parameters()).device.type == "cpu"


def test_width_and_size_change_the_measured_cost(capsys):
    full = printed_gflops(capsys, "--backbone", "resnet18", "--size", "112")
    half = printed_gflops(capsys, "--backbone", "resnet18", "--size", "112", "--width", "0.5")
    assert 0.2 < half / full < 0.3  # conv MACs scale with channels squared, the stem linearly
    assert printed_gflops(capsys, "--backbone", "resnet18", "--size", "224") == pytest.approx(
        4 * full, rel=0.1
    )


def test_cli_prints_one_line_and_rejects_bad_sizes():
    ok = subprocess.run(
        ["dkp", "flops", "--backbone", "mobilenet_v2", "--size", "224", "--width", "1.0"],
        capture_output=True,
        text=True,
    )
    assert (
        ok.returncode == 0
        and len(ok.stdout.strip().splitlines()) == 1
        and "multiply-accumulates" in ok.stdout
    )
    bad = subprocess.run(
        ["dkp", "flops", "--backbone", "resnet18", "--size", "8"], capture_output=True, text=True
    )
    assert (
        bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "--size" in bad.stderr
    )


def test_default_pair_cost_ratio_is_that_of_the_real_pairs(repo):
    """Teacher / student per-frame cost of the default params ~ ResNet-50 / MobileNetV2 (13.6x)."""
    p = yaml.safe_load((repo / "params.yaml").read_text())
    t = backbone_macs(build_backbone(p["teacher"], 20), p["teacher"]["input_size"])
    s = backbone_macs(build_backbone(p["student"], 20), p["student"]["input_size"])
    assert 9 <= t / s <= 18, (t, s)


ROLES = {
    "dste": {"s": "student", "t": "teacher"},
    "dkp": {"s": "student", "t": "teacher"},
    "teacher": {"t": "teacher"},
    "student": {"s": "plain"},
    "student-kd": {"s": "student"},
}


@pytest.fixture(scope="module")
def cost():
    torch.manual_seed(0)
    nets = {
        "teacher": (build_backbone({"arch": "resnet18", "width": 0.25}, 9), 32),
        "student": (build_backbone({"arch": "mobilenet_v2", "width": 0.25}, 9), 32),
        "plain": (build_backbone({"arch": "mobilenet_v2", "width": 0.25}, 9), 32),
    }
    dkp = DKP(nets["student"][0].feature_dim, nets["teacher"][0].feature_dim, 9, 4, 32)
    return CostModel.from_modules(nets, ROLES, dkp), nets, dkp


@pytest.mark.parametrize("method", sorted(ROLES))
def test_total_is_the_sum_of_measured_parts(cost, method):
    model, nets, _ = cost
    parts = model.parts(method, 20, 5)
    assert model.gflops(method, 20, 5) == pytest.approx(sum(parts.values()), rel=1e-12)
    per_frame = {n: backbone_macs(m, s) / 1e9 for n, (m, s) in nets.items()}
    roles = ROLES[method]
    assert parts["student"] == pytest.approx(20 * per_frame[roles["s"]] if "s" in roles else 0.0)
    assert parts["teacher"] == pytest.approx(5 * per_frame[roles["t"]] if "t" in roles else 0.0)
    assert parts["heads"] > 0
    assert (parts["dkp"] > 0) == (method in ("dste", "dkp"))


def test_dkp_cost_grows_as_ns_times_nt(cost):
    """The attention's mixed second difference is a positive constant: a bilinear ns x nt term."""
    model, _, dkp = cost
    d = {
        (ns, nt): model.parts("dste", ns, nt)["dkp"]
        for ns in (4, 5, 20, 21)
        for nt in (3, 4, 10, 11)
    }
    mixed = [
        d[(a + 1, b + 1)] - d[(a + 1, b)] - d[(a, b + 1)] + d[(a, b)]
        for a in (4, 20)
        for b in (3, 10)
    ]
    assert min(mixed) > 0
    assert max(mixed) == pytest.approx(min(mixed), rel=1e-9)
    assert mixed[0] == pytest.approx(2 * dkp.dim / 1e9)  # q.k and A.v: dim MACs each per (i, j)
    assert (
        model.parts("dste", 40, 10)["dkp"]
        > model.parts("dste", 20, 10)["dkp"]
        > model.parts("dste", 20, 5)["dkp"]
    )


@pytest.mark.parametrize("ensemble", [True, False])
def test_bilinear_form_equals_a_direct_count(cost, ensemble):
    """The form fitted on four counts gives exactly what FlopCounterMode counts elsewhere."""
    model, _, _ = cost
    rng = np.random.default_rng(0)
    pairs = [
        (7, 3),
        (50, 5),
        (20, 20),
        (1, 9),
        *(tuple(int(x) for x in rng.integers(1, 80, 2)) for _ in range(3)),
    ]
    for ns, nt in pairs:
        assert model.dkp_macs(ensemble, ns, nt) == model.measure_dkp(ensemble, ns, nt), (ns, nt)


def test_bilinear_form_follows_the_module():
    """Coefficients are counted on the module given: a wider attention costs more per pair."""
    nets = {
        "s": build_backbone({"arch": "mobilenet_v2", "width": 0.25}, 9),
        "t": build_backbone({"arch": "resnet18", "width": 0.25}, 9),
    }
    ds, dt = nets["s"].feature_dim, nets["t"].feature_dim
    narrow, wide = (CostModel({}, {}, ROLES, DKP(ds, dt, 9, 4, dim)) for dim in (32, 64))
    pair = [
        m.dkp_macs(True, 21, 5)[0]
        - m.dkp_macs(True, 20, 5)[0]
        - m.dkp_macs(True, 21, 4)[0]
        + m.dkp_macs(True, 20, 4)[0]
        for m in (narrow, wide)
    ]
    assert pair == [2 * 32, 2 * 64]


def test_counts_rebuild_the_same_model_without_counting(cost):
    """What `dkp features` writes (costs.json) is all the sweep needs: the model rebuilt from the
    JSON text of its counts charges every method exactly what the counted model charges, with no
    module to count."""
    model, _, _ = cost
    back = CostModel.from_counts(json.loads(json.dumps(model.counts())), ROLES)
    rng = np.random.default_rng(1)
    pairs = [(1, 1), (20, 5), *(tuple(int(x) for x in rng.integers(1, 120, 2)) for _ in range(6))]
    for method in sorted(ROLES):
        for ns, nt in pairs:
            assert back.parts(method, ns, nt) == model.parts(method, ns, nt), (method, ns, nt)
    with pytest.raises(ValueError, match="no DKP module"):
        back.measure_dkp(True, 2, 2)


def test_ensemble_heads_cost_more_than_dkp_alone(cost):
    model, _, _ = cost
    assert model.parts("dste", 20, 5)["heads"] > model.parts("dkp", 20, 5)["heads"]
    assert model.gflops("teacher", None, 5) == pytest.approx(model.gflops("teacher", 20, 5))


def test_count_macs_of_a_linear_layer():
    lin = torch.nn.Linear(10, 4)
    assert count_macs(lin, torch.zeros(3, 10)) == 3 * 10 * 4
