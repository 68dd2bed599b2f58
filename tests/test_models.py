"""Backbones: torchvision key/shape compatibility, the embed/classify interface, preprocessing,
ImageNet checkpoint loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures.rounding import U32, U64, assert_sums_within_bound, gamma

from dkp.errors import DkpError
from dkp.models import (
    FORWARD_BATCH,
    build_backbone,
    embed_chunks,
    embed_frames,
    load_pretrained,
    preprocess,
)
from dkp.models.preprocess import chunk_bounds

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_keys.json"
TORCHVISION = json.loads(FIXTURE.read_text())


def _arch(name: str) -> dict:
    arch, _, width = name.partition("@")
    return {"arch": arch, "width": float(width or 1.0)}


@pytest.mark.parametrize("name", sorted(k for k in TORCHVISION if not k.startswith("_")))
def test_state_dict_matches_torchvision_key_for_key(name):
    """Same keys, same order, same shapes as torchvision's model of that name (1000 classes)."""
    ours = [[k, list(v.shape)] for k, v in build_backbone(_arch(name), 1000).state_dict().items()]
    theirs = TORCHVISION[name]
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    mismatched = [(k, a, b) for (k, a), (_, b) in zip(ours, theirs) if a != b]
    assert not mismatched, mismatched[:3]


@pytest.mark.parametrize(
    "arch,width,dim",
    [
        ("resnet18", 1.0, 512),
        ("resnet34", 0.5, 256),
        ("resnet50", 0.25, 512),
        ("mobilenet_v2", 0.5, 1280),
        ("mobilenet_v2", 1.5, 1920),
    ],
)
def test_embed_gives_one_pooled_feature_per_frame(arch, width, dim):
    torch.manual_seed(0)
    m = build_backbone({"arch": arch, "width": width}, 7).eval()
    x = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        f = m.embed(x)
        assert f.shape == (3, dim) == (3, m.feature_dim)
        # exact: forward is classify(embed(x)), classify the head (Dropout is off in eval)
        assert torch.equal(m(x), m.classify(f))
        assert torch.equal(m.classify(f), m.head(f))
    assert m.head.out_features == 7


@pytest.mark.parametrize("n,batch", [(0, 4), (1, 4), (4, 4), (5, 4), (9, 4), (257, 128), (300, 7)])
def test_chunk_bounds_cover_the_frames_in_near_equal_passes(n, batch):
    bounds = chunk_bounds(n, batch)
    starts, stops = [a for a, _ in bounds], [b for _, b in bounds]
    assert starts == ([0] + stops[:-1] if bounds else [])
    assert (stops[-1] if bounds else 0) == n
    sizes = [b - a for a, b in bounds]
    assert len(sizes) == -(-n // batch) and all(0 < s <= batch for s in sizes)
    assert max(sizes, default=0) - min(sizes, default=0) <= 1
    assert n < 2 or min(sizes) >= 2  # no frame goes through alone beside others


def test_embed_frames_feeds_the_network_at_most_its_forward_batch():
    """embed_frames and embed_chunks pass at most `batch` frames at a time and return, in order,
    exactly what those passes give."""
    torch.manual_seed(0)
    m = build_backbone({"arch": "resnet18", "width": 0.125}, 5).eval()
    seen = []
    m.conv1.register_forward_pre_hook(lambda mod, args: seen.append(len(args[0])))
    frames = torch.randint(0, 256, (11, 16, 16, 3), dtype=torch.uint8).numpy()
    got = embed_frames(m, frames, 16, "per_image", torch.device("cpu"), batch=4)
    assert seen == [b - a for a, b in chunk_bounds(11, 4)] and sorted(seen) == [3, 4, 4]
    x = preprocess(torch.from_numpy(frames), 16, "per_image")
    with torch.no_grad():
        parts = torch.cat([m.embed(x[a:b]) for a, b in chunk_bounds(11, 4)])
        assert torch.equal(got, parts)
        assert torch.equal(embed_chunks(m, x, batch=4), parts)
        # 11 frames <= FORWARD_BATCH: one pass
        assert torch.equal(embed_chunks(m, x, batch=FORWARD_BATCH), m.embed(x))


def test_width_scales_resnet_base_channels():
    assert build_backbone({"arch": "resnet18", "width": 0.5}, 3).conv1.out_channels == 32
    assert (
        build_backbone({"arch": "resnet50", "width": 0.25}, 3).layer4[0].conv3.out_channels == 512
    )


def test_strided_pointwise_is_a_strided_1x1_convolution():
    """Value and both gradients of StridedPointwise, against the strided 1x1 convolution in
    float64 (not oneDNN's float32 kernel, the one StridedPointwise avoids), within the float32
    rounding of each sum's length on any CPU (fixtures/rounding.py)."""
    torch.manual_seed(0)
    ours = build_backbone({"arch": "resnet18", "width": 0.125}, 3).layer2[0].downsample[0]
    x = torch.randn(5, 8, 15, 16).contiguous(memory_format=torch.channels_last)
    a = x.clone().requires_grad_(True)
    y = ours(a)
    assert y.shape == (5, 16, 8, 8)
    go = torch.randn_like(y)
    y.backward(go)

    def plain64(x, w, go):
        x, w = x.double().requires_grad_(True), w.double().requires_grad_(True)
        out = torch.nn.functional.conv2d(x, w, stride=2)
        out.backward(go.double())
        return out.detach(), x.grad, w.grad

    w = ours.weight.detach()
    exact = plain64(x, w, go)
    terms = plain64(x.abs(), w.abs(), go.abs())  # every product >= 0: sums of |products|
    # an output sums over 8 input channels, an input gradient over 16 output channels (exactly 0
    # off the stride-2 grid), a weight gradient over the 5 x 8 x 8 output positions
    got = (y.detach(), a.grad, ours.weight.grad)
    for g, want, size, n in zip(got, exact, terms, (8, 16, 320)):
        assert_sums_within_bound(g, want, size, n)


# The default student (width 0.125: 8 channels into layer2's downsample) on odd batch sizes, two
# threads, fp32: the shape oneDNN's strided 1x1 kernel corrupts the heap on (AVX-512 CPUs). In a
# child process, as a crash would take pytest down. The downsample's weight gradient, a sum over
# the n x 8 x 8 positions of its output, is checked against that sum in float64 of the inputs
# and output gradient it was given, within the float32 rounding of that length
# (fixtures/rounding.py); a corrupted kernel is off by the gradient's own size.
_ODD_BATCHES = """
import torch
from dkp.models import build_backbone
from fixtures.rounding import U64, gamma
torch.set_num_threads(2)
for n in (3, 17, 33):
    torch.manual_seed(0)
    net = build_backbone({"arch": "resnet18", "width": 0.125}, 5)
    conv = net.layer2[0].downsample[0]
    seen = {}
    def keep(module, args, out):
        seen["x"] = args[0].detach()
        out.register_hook(lambda g: seen.__setitem__("go", g.detach()))
    conv.register_forward_hook(keep)
    net.embed(torch.randn(n, 3, 64, 64)).square().sum().backward()
    x, go = seen["x"][:, :, ::2, ::2].double(), seen["go"].double()
    exact = torch.einsum("bihw,bohw->oi", x, go)
    terms = torch.einsum("bihw,bohw->oi", x.abs(), go.abs())
    length = go.shape[0] * go.shape[2] * go.shape[3]
    bound = (gamma(length) + gamma(length, U64)) * terms
    err = (conv.weight.grad.double().flatten(1) - exact).abs()
    worst = float((err / bound).max())
    print(n, "ok" if worst <= 1 else f"gradient off by {worst:.2g} x its bound", flush=True)
"""


def test_narrow_resnet_trains_on_odd_batches():
    res = subprocess.run(
        [sys.executable, "-c", _ODD_BATCHES],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr[-2000:])
    assert res.stdout.split() == ["3", "ok", "17", "ok", "33", "ok"], res.stdout


def test_unknown_arch_is_one_line():
    with pytest.raises(DkpError, match="unknown backbone 'vgg16'"):
        build_backbone({"arch": "vgg16", "width": 1.0}, 3)


def test_preprocess_per_image_standardises_each_channel():
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (4, 48, 64, 3), generator=g, dtype=torch.uint8)
    frames[0] = 7  # a flat frame stays finite
    x = preprocess(frames, 32, "per_image")
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # the resized frames as preprocess makes them (same kernel, same layout: the same bits),
    # standardised in float64 with Tensor.std (unbiased)
    side = torch.nn.functional.interpolate(
        frames.permute(0, 3, 1, 2).float().div_(255)[..., 8:56],
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[1:].double()
    n = 32 * 32
    mean, dev = side.mean(dim=(2, 3), keepdim=True), side.std(dim=(2, 3), keepdim=True)
    ref = (side - mean) / (dev + 1e-3)
    # float32 rounding of preprocess, to first order: its n-term mean of values >= 0, the
    # centring, the n-term sum of squares, the division, sqrt and quotient
    centred = (side - mean).abs()
    d_centred = gamma(n) * mean + U32 * centred
    sums = (2, 3)
    d_sq = d_centred.amax(dim=sums, keepdim=True) * centred.sum(dim=sums, keepdim=True)
    rel_dev = 0.5 * (gamma(n + 2) + 2 * d_sq / (centred**2).sum(dim=sums, keepdim=True)) + U32
    bound = d_centred / (dev + 1e-3) + ref.abs() * (rel_dev + 3 * U32)
    got = x[1:].double()
    assert bool(((got - ref).abs() <= bound).all()), float(((got - ref).abs() / bound).max())
    # hence mean 0 and deviation dev / (dev + 1e-3) (in float64: + its own n-term rounding)
    slack = gamma(n, U64) * ref.abs().amax(dim=sums)
    assert bool((got.mean(dim=sums).abs() <= bound.mean(dim=sums) + slack).all())
    want_dev = (dev / (dev + 1e-3)).flatten(2).squeeze(-1)
    assert (want_dev > 0.99).all()  # the eps is negligible beside a real deviation
    off = (got.std(dim=sums) - want_dev).abs()
    assert bool((off <= (n / (n - 1)) ** 0.5 * bound.amax(dim=sums) + slack).all()), off


def test_preprocess_centre_crops_then_imagenet_normalises():
    frames = torch.zeros(1, 10, 30, 3, dtype=torch.uint8)
    frames[:, :, 10:20] = 255  # the centre 10x10 square is white, the sides black
    x = preprocess(frames, 10, "imagenet")
    white = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    # exact: every pixel is 255 / 255 = 1, then the same correctly rounded - and /
    assert torch.equal(x[0], white.view(3, 1, 1).expand(3, 10, 10))
    with pytest.raises(DkpError, match="normalize"):
        preprocess(frames, 10, "zscore")


def test_imagenet_checkpoint_loads_with_a_new_classifier(tmp_path, capsys):
    """A torchvision-format state dict (1000 classes; keys as in the fixture) loads into a
    20-class model: every trunk tensor copied, the classifier re-initialised, one line."""
    for arch, head in (("resnet18", "fc"), ("mobilenet_v2", "classifier.1")):
        torch.manual_seed(1)
        imagenet = build_backbone({"arch": arch, "width": 1.0}, 1000)
        path = tmp_path / f"{arch}.pth"
        torch.save(imagenet.state_dict(), path)
        torch.manual_seed(2)
        ours = build_backbone({"arch": arch, "width": 1.0}, 20)
        fresh_head = ours.head.weight.detach().clone()
        line = load_pretrained(ours, str(path), "teacher")
        assert "\n" not in line and "missing 0" in line and "unexpected 0" in line and head in line
        src, dst = imagenet.state_dict(), ours.state_dict()
        for k, v in dst.items():
            if not k.startswith(head + "."):
                assert torch.equal(v, src[k]), k
        assert torch.equal(ours.head.weight, fresh_head) and ours.head.out_features == 20


def test_pretrained_with_the_wrong_width_is_one_line(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(
        {"state_dict": build_backbone({"arch": "resnet18", "width": 1.0}, 1000).state_dict()}, path
    )
    with pytest.raises(DkpError, match="differ in shape"):
        load_pretrained(build_backbone({"arch": "resnet18", "width": 0.5}, 5), str(path), "student")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(DkpError, match="cannot read"):
        load_pretrained(
            build_backbone({"arch": "resnet18", "width": 0.5}, 5), str(tmp_path / "junk.pth")
        )


def _validate(workdir: Path, capsys) -> tuple[int, str]:
    """`dkp validate-params` in `workdir` (dkp's command-line entry point, in this process)."""
    import os

    from dkp.cli import main

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        rc = main(["validate-params"])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_validate_params_reads_the_weights_and_matches_their_keys(tiny_workdir, capsys):
    """Real .pth files against the tiny teacher (ResNet-18 x0.25): an empty file, another
    architecture's weights and a file missing one trunk tensor are each refused with one line;
    a file whose only difference is the classifier (ImageNet's 1000 classes, or none) passes."""
    import yaml

    p = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    teacher = {"arch": p["teacher"]["arch"], "width": p["teacher"]["width"]}
    own = build_backbone(teacher, 1000).state_dict()
    files = {
        "empty.pth": None,
        "mobilenet.pth": build_backbone({"arch": "mobilenet_v2", "width": 0.25}, 1000).state_dict(),
        "one-missing.pth": {k: v for k, v in own.items() if k != "layer4.1.conv2.weight"},
        "wider.pth": build_backbone({**teacher, "width": 0.5}, 1000).state_dict(),
        "imagenet-head.pth": own,
        "no-head.pth": {k: v for k, v in own.items() if not k.startswith("fc.")},
    }
    for name, state in files.items():
        path = tiny_workdir / name
        path.write_bytes(b"") if state is None else torch.save(state, path)
    want = {
        "empty.pth": "teacher.pretrained: 'empty.pth' is empty (0 bytes)",
        "mobilenet.pth": "teacher.pretrained: 'mobilenet.pth' does not match teacher.arch/width: ",
        "one-missing.pth": (
            "teacher.pretrained: 'one-missing.pth' does not match teacher.arch/width: 1 missing "
            "(e.g. 'layer4.1.conv2.weight') of"
        ),
        "wider.pth": (
            "teacher.pretrained: 100 tensors differ in shape from teacher.arch/width, e.g. "
            "conv1.weight: checkpoint (32, 3, 7, 7) vs ours (16, 3, 7, 7)"
        ),
    }
    for name in files:
        p["teacher"]["pretrained"] = name
        (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        rc, text = _validate(tiny_workdir, capsys)
        if name in want:
            assert rc == 2 and text.count("\n") == 1, (name, text)
            assert text.startswith(f"dkp validate-params: invalid parameter: {want[name]}"), text
            assert "Traceback" not in text
        else:
            assert (rc, text) == (0, "params.yaml: valid\n"), (name, text)


def test_wrong_weights_stop_a_stage_before_it_writes(tiny_workdir):
    """`dkp synthesize`, the first stage of both runners, matches the weights too: a file of
    another architecture stops it before the data set is generated."""
    import yaml

    p = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    r34 = build_backbone({"arch": "resnet34", "width": 0.25}, 10)
    torch.save(r34.state_dict(), tiny_workdir / "r34.pth")
    p["teacher"]["pretrained"] = "r34.pth"
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = subprocess.run(
        ["dkp", "synthesize"], cwd=tiny_workdir, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "teacher.pretrained: 'r34.pth' does not match teacher.arch/width: " in res.stderr
    assert "unexpected (e.g. 'layer1.2.conv1.weight')" in res.stderr
    assert sorted(x.name for x in tiny_workdir.iterdir()) == ["params.yaml", "r34.pth"]
