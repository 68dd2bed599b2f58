"""Training: sampling and schedule helpers, resumable epochs, and both stages end to end on the
tiny params (a real kill -9 mid-run, then a resume that ends bit-identical); a training subset
without a readable video stops training with one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fixtures import media as M
from fixtures.bad_inputs import BAD_VIDEOS, _write_bad_videos, dkp, one_line_error
from fixtures.interrupt import outliving, signal_when
from fixtures.rounding import U32, gamma

from dkp.errors import DkpError
from dkp.models import to_unit, unit
from dkp.train import batches, loop
from dkp.train.data import VideoSet

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- pure helpers


def test_tsn_indices_take_one_frame_per_run_of_candidates():
    rng = np.random.default_rng(0)
    cand = np.arange(10, 50)
    for _ in range(20):
        idx = batches.tsn_indices(rng, cand, 4)
        assert len(idx) == 4 and set(idx) <= set(cand)
        assert [int((i - 10) // 10) for i in idx] == [0, 1, 2, 3]  # one from each quarter
    few = batches.tsn_indices(rng, np.array([3, 7]), 5)
    assert len(few) == 5 and set(few) <= {3, 7} and list(few) == sorted(few)


def test_spread_and_even_indices():
    rng = np.random.default_rng(1)
    idx = batches.spread_indices(rng, 100, 10)
    assert list(idx // 10) == list(range(10))
    assert list(batches.even_indices(np.arange(5, 9), 8)) == [5, 6, 7, 8]
    assert list(batches.even_indices(np.arange(0, 40), 4)) == [5, 15, 25, 35]


def test_epoch_batches_cover_every_video_once():
    parts = batches.epoch_batches(np.random.default_rng(2), 23, 8)
    assert [len(b) for b in parts] == [8, 8, 7]
    assert sorted(np.concatenate(parts)) == list(range(23))


def test_augment_crops_and_flips_per_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    assert torch.equal(batches.augment(x, np.random.default_rng(0), 0, False), x)
    out = batches.augment(x, np.random.default_rng(0), 2, True)
    assert out.shape == x.shape
    a = batches.augment(x, np.random.default_rng(5), 2, True)
    b = batches.augment(x, np.random.default_rng(5), 2, True)
    assert torch.equal(a, b)
    flips = [batches.augment(x[:1], np.random.default_rng(s), 0, True) for s in range(12)]
    assert any(torch.equal(f, x[:1].flip(-1)) for f in flips) and any(
        torch.equal(f, x[:1]) for f in flips
    )


def test_rotations_and_channel_shuffles_only_rearrange_pixels():
    x = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    rotations = [torch.rot90(x[0], k, (1, 2)) for k in range(4)]
    seen = set()
    for s in range(16):
        out = batches.augment(x, np.random.default_rng(s), 0, False, rot90=True)[0]
        seen.add(next(k for k, r in enumerate(rotations) if torch.equal(out, r)))
        shuffled = batches.augment(x, np.random.default_rng(s), 0, False, channel_shuffle=True)[0]
        assert sorted(shuffled.sum(dim=(1, 2)).tolist()) == sorted(x[0].sum(dim=(1, 2)).tolist())
    assert seen == {0, 1, 2, 3}


def test_augmenting_bytes_then_converting_equals_converting_then_augmenting():
    """The loops augment the uint8 frames and convert after: the same floats, bit for bit, as
    converting first."""
    frames = torch.from_numpy(
        np.random.default_rng(3).integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
    )
    for pad, flip, rot, shuffle in [
        (2, True, True, True),
        (0, True, False, False),
        (3, False, False, True),
    ]:
        a = batches.augment(to_unit(frames), np.random.default_rng(7), pad, flip, rot, shuffle)
        b = unit(
            batches.augment(
                frames.permute(0, 3, 1, 2), np.random.default_rng(7), pad, flip, rot, shuffle
            )
        )
        assert b.dtype == torch.float32 and torch.equal(a, b)
        assert not torch.equal(a, to_unit(frames))  # each setting moves some pixel


def test_warmup_then_cosine_to_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = loop.warmup_cosine(opt, 4, 20)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # float64 schedule arithmetic on a few numbers: within 1e-15, pytest.approx's 1e-6 far above
    assert lrs[:5] == sorted(lrs[:5]) and lrs[4] == pytest.approx(1.0)
    assert lrs[4:] == sorted(lrs[4:], reverse=True) and lrs[-1] < 0.01


def test_activity_frames_and_positions():
    times = [np.arange(10) + 0.5, np.arange(4) + 0.5]
    vs = VideoSet(
        ids=["a", "b"],
        labels=np.array([0, 1]),
        durations=np.array([10.0, 4.0]),
        segments=[[[2, 4], [7, 8]], [[9, 12]]],
        frames=[None, None],
        times=times,
    )
    assert list(vs.activity(0)) == [2, 3, 7]
    assert list(vs.activity(1)) == [0, 1, 2, 3]  # no frame inside: every frame
    assert list(vs.offsets) == [0, 10, 14] and vs.n_frames(1) == 4
    # exact: 0.5 / 4 and 3.5 / 4 are binary fractions
    np.testing.assert_array_equal(vs.positions(1, np.array([0, 3])), [0.125, 0.875])


def _toy_phase(folder: Path, epochs: int) -> tuple[dict, list]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = loop.warmup_cosine(opt, 2, 12)
    data = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(64) % 3

    def epoch(e, rng):
        for b in batches.epoch_batches(rng, 64, 16):
            loss = torch.nn.functional.cross_entropy(model(data[b]), labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        return {
            "loss": float(loss.detach()),
            "draw": float(torch.rand(1)),
            "np": float(np.random.rand()),
        }

    rows = loop.run_phase(
        folder, "toy", epochs, 0, {"model": model, "opt": opt, "sched": sched}, epoch
    )
    return model.state_dict(), rows


def test_resumed_phase_equals_uninterrupted(tmp_path):
    whole, rows = _toy_phase(tmp_path / "a", 3)
    _toy_phase(tmp_path / "b", 1)  # "interrupted" after epoch 1
    torch.manual_seed(123)  # a resumed run must not depend on the state it starts in
    np.random.seed(7)
    resumed, rows_b = _toy_phase(tmp_path / "b", 3)
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows_b]


# ---------------------------------------------------------------- both stages, end to end

SEED = 0  # the tiny params' first seed


def dkp_cmd(workdir: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dkp", *args, "--params", "params.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


def train_cmd(stage: str, seed: int = SEED) -> list[str]:
    return ["dkp", stage, "--seed", str(seed), "--params", "params.yaml"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The tiny dataset, generated and extracted once for this module."""
    root = tmp_path_factory.mktemp("tiny-data")
    shutil.copy(Path(__file__).parent / "params-tiny.yaml", root / "params.yaml")
    for stage in ("synthesize", "data", "frames"):
        res = dkp_cmd(root, stage)
        assert res.returncode == 0, res.stderr
    return root


def workdir_with_data(tiny_data: Path, path: Path) -> Path:
    path.mkdir()
    shutil.copy(tiny_data / "params.yaml", path / "params.yaml")
    os.symlink(tiny_data / "data", path / "data")
    return path


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """Both stages run uninterrupted on the tiny params; returns the work dir and timings."""
    work = workdir_with_data(tiny_data, tmp_path_factory.mktemp("trained") / "w")
    seconds = {}
    for stage in ("train-teacher", "train-student"):
        t0 = time.perf_counter()
        res = dkp_cmd(work, stage, "--seed", str(SEED))
        seconds[stage] = time.perf_counter() - t0
        assert res.returncode == 0, res.stderr
    return work, seconds


@pytest.mark.slow
def test_both_stages_run_in_seconds_and_write_their_outputs(trained, tiny_params):
    from dkp import checkpoints, layout
    from dkp.inference import Predictor

    work, seconds = trained
    assert max(seconds.values()) < 120, seconds
    teacher_log = pd.read_csv(work / layout.train_log("teacher", SEED))
    assert list(teacher_log.columns) == ["epoch", "loss", "lr", "train_acc", "val_acc", "seconds"]
    assert list(teacher_log["epoch"]) == list(
        range(1, tiny_params["train"]["teacher"]["epochs"] + 1)
    )
    student_log = pd.read_csv(work / layout.train_log("student", SEED))
    n_plain, n_dkp = (
        tiny_params["train"]["plain_student"]["epochs"],
        tiny_params["train"]["student"]["epochs"],
    )
    assert list(student_log["phase"]) == ["plain"] * n_plain + ["kd"] * n_plain + ["dkp"] * n_dkp
    assert list(student_log["epoch"]) == list(range(1, 2 * n_plain + n_dkp + 1))
    kd_rows = student_log[student_log["phase"] == "kd"]
    assert kd_rows[["loss", "ce_kd", "kd_kd", "val_acc"]].notna().all().all()
    np.testing.assert_allclose(
        kd_rows["loss"],
        kd_rows["ce_kd"] + tiny_params["train"]["student_kd"]["lambda_kd"] * kd_rows["kd_kd"],
        rtol=1e-5,
    )
    assert (
        student_log.loc[student_log["phase"] == "dkp", ["ce_s", "ce_p", "feat", "kd", "val_acc"]]
        .notna()
        .all()
        .all()
    )
    assert ((student_log["val_acc"] >= 0) & (student_log["val_acc"] <= 1)).all()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        s = checkpoints.read(layout.student_checkpoint(SEED), "student")
        assert set(s["backbones"]) == {"student", "student_plain", "student_kd"}
        # DKP trained on the sweep's DKP/DSTE pairs, their counts over the training videos
        from dkp import framestore, sampling
        from dkp.train.student import dkp_pairs

        pairs = dkp_pairs(tiny_params)
        train = framestore.available(tiny_params, tiny_params["data"]["train_subset"])
        (ns_lo, ns_hi), (nt_lo, nt_hi) = sampling.count_span(pairs, train["duration"].to_numpy())
        assert s["train_pairs"] == {
            "configurations": [c.name for c in pairs],
            "ns": [ns_lo, ns_hi],
            "nt": [nt_lo, nt_hi],
        }
        from dkp import configs as configs_mod

        def key(c):
            return (c.strategy, c.ns, c.nt, c.rt, c.ratio)

        evaluated = [c for c in configs_mod.build(tiny_params) if c.method in ("dkp", "dste")]
        assert sorted(map(key, pairs), key=str) == sorted(set(map(key, evaluated)), key=str)
        assert nt_lo == 1
        pred = Predictor.load(tiny_params, "cpu", SEED)
        assert pred.num_classes == tiny_params["data"]["synthetic"]["num_classes"]
        frames = np.load(next((work / "data/frames").glob("shard-*/*[!t].npy")))
        feats = {n: pred.embed(n, frames[:4]) for n in pred.backbone_names}
        u = torch.linspace(0, 1, 4)[None]
        mask = torch.ones(1, 4, dtype=torch.bool)
        out = pred.predict(
            "dste", s=(feats["student"][None], u, mask), t=(feats["teacher"][None], u, mask)
        )
        n_classes = out["video"].shape[-1]  # rows of softmax probabilities over 4 + 4 frames
        torch.testing.assert_close(
            out["video"].sum(-1), torch.ones(1), atol=gamma(2 * n_classes + 4 + 8 + 1), rtol=0
        )
        assert pred.cost().gflops("dste", 20, 5) > pred.cost().gflops("student", 20, 5)
    finally:
        os.chdir(cwd)


def _kill_after(workdir: Path, stage: str, checkpoint_glob: str) -> None:
    """Start a stage, kill -9 it while a resume checkpoint matching the glob exists."""
    rc, _, err = signal_when(
        workdir,
        train_cmd(stage),
        signal.SIGKILL,
        lambda: bool(list(workdir.glob(checkpoint_glob))),
        600,
    )
    assert rc == -signal.SIGKILL, f"{stage} finished before it could be killed (rc {rc}): {err}"


@pytest.mark.slow
def test_kill_9_then_resume_ends_bit_identical(trained, tiny_data, tmp_path):
    ref, _ = trained
    models = Path("models") / f"seed-{SEED}"
    work = workdir_with_data(tiny_data, tmp_path / "killed")
    _kill_after(work, "train-teacher", ".dkp-cache/train/teacher/*/teacher.pt")
    assert not (work / models / "teacher.pt").exists()
    assert dkp_cmd(work, "train-teacher", "--seed", str(SEED)).returncode == 0
    _kill_after(work, "train-student", ".dkp-cache/train/student/*/plain.pt")
    _kill_after(work, "train-student", ".dkp-cache/train/student/*/kd.pt")
    _kill_after(work, "train-student", ".dkp-cache/train/student/*/dkp.pt")
    assert not (work / models / "student.pt").exists()
    res = dkp_cmd(work, "train-student", "--seed", str(SEED))
    assert res.returncode == 0, res.stderr
    for name in ("teacher.pt", "student.pt"):
        a = torch.load(ref / models / name, weights_only=True)
        b = torch.load(work / models / name, weights_only=True)
        for net in a["backbones"]:
            sa, sb = a["backbones"][net]["state_dict"], b["backbones"][net]["state_dict"]
            assert all(torch.equal(sa[k], sb[k]) for k in sa), (name, net)
        if "dkp" in a:
            sd_a, sd_b = a["dkp"]["state_dict"], b["dkp"]["state_dict"]
            assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
        assert (ref / models / name).read_bytes() == (work / models / name).read_bytes(), name
    log = pd.read_csv(work / "results/train" / f"seed-{SEED}" / "student.csv")
    ref_log = pd.read_csv(ref / "results/train" / f"seed-{SEED}" / "student.csv")
    pd.testing.assert_frame_equal(log.drop(columns="seconds"), ref_log.drop(columns="seconds"))


@pytest.fixture
def stage_runtime():
    """Lets a test set the process up as a stage does (runtime.setup: threads, precision, the
    vector-math warm-up), then restores the thread count and precision of the test process."""
    from dkp import runtime

    threads, precision = torch.get_num_threads(), runtime._precision
    yield
    torch.set_num_threads(threads)
    runtime.set_precision(precision)


def _kd_setup(work: Path):
    """The params, frozen teacher, its entry and a TrainContext of the tiny run in `work`, as
    train-student builds them (runtime.setup included: numerics depend on it; the resume folder a
    fresh one under work)."""
    from dkp import checkpoints, framestore, params, runtime
    from dkp.train import classifier
    from dkp.train.context import TrainContext
    from dkp.train.data import load_subset, monitor_subset

    p = params.load(work / "params.yaml")
    runtime.setup(p, SEED)
    classes = framestore.load_classes(p)
    t_entry = checkpoints.read(work / f"models/seed-{SEED}/teacher.pt", "teacher")["backbones"][
        "teacher"
    ]
    teacher = checkpoints.load_backbone(t_entry, len(classes)).requires_grad_(False)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    monitor = load_subset(p, monitor_subset(p), len(classes))
    frames, labels, _ = classifier.validation_frames(monitor, p["train"]["val_frames_per_video"])
    folder = work / "kd-resume"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    ctx = TrainContext(train, frames, labels, torch.device("cpu"), folder)
    return p, teacher, t_entry, ctx, len(classes)


@pytest.mark.slow
def test_student_kd_differs_from_the_student_baseline_by_the_distillation_term_alone(
    trained, monkeypatch, stage_runtime
):
    """With lambda_kd 0 the Student+KD phase trains the very network of the plain phase, bit for
    bit (same seed, recipe, epochs, frames and augmentations); with the run's lambda_kd it does
    not, and its distillation term is positive."""
    from dkp import checkpoints
    from dkp.train import kd, student

    work, _ = trained
    monkeypatch.chdir(work)
    p, teacher, t_entry, ctx, n = _kd_setup(work)
    plain = checkpoints.read(work / f"models/seed-{SEED}/student.pt", "student")["backbones"]
    seed = SEED + student.SEED_OFFSET["kd"]
    p["train"]["student_kd"]["lambda_kd"] = 0.0
    net, rows = kd.fit(p, teacher, t_entry, ctx, seed, n)
    ref = plain["student_plain"]["state_dict"]
    assert all(torch.equal(net.state_dict()[k], ref[k]) for k in ref)
    assert all(r["kd_kd"] > 0 for r in rows)  # computed, weighted 0
    got = plain["student_kd"]["state_dict"]  # the stage's, with the tiny params' lambda_kd
    assert not all(torch.equal(got[k], ref[k]) for k in ref)


@pytest.mark.slow
def test_cached_and_online_teacher_targets_agree_on_unaugmented_frames(
    trained, monkeypatch, stage_runtime
):
    """The two sources of soft targets are one function of a frame: the cached table's rows equal
    the online teacher's logits of the same frames, un-augmented."""
    from dkp.train import kd

    work, _ = trained
    monkeypatch.chdir(work)
    p, teacher, t_entry, ctx, _ = _kd_setup(work)
    train = ctx.train
    cached = kd.cached(
        teacher.eval(), t_entry, train, kd.candidate_rows(train, True), ctx.device, ctx.group
    )
    online = kd.online(teacher, t_entry, ctx.device)
    rows = kd.candidate_rows(train, True)[::7]
    video = np.searchsorted(train.offsets, rows, side="right") - 1
    x = torch.from_numpy(train.gather(zip(video, rows - train.offsets[video]))).permute(0, 3, 1, 2)
    a, b = cached(rows, x), online(rows, x)
    assert a.shape == (len(rows), teacher.head.out_features)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # a frame the phase cannot draw has no target: an error, not another frame's
    inside = np.zeros(train.n_frames_total, bool)
    inside[kd.candidate_rows(train, True)] = True
    outside = np.flatnonzero(~inside)[:1]
    assert len(outside) == 1
    with pytest.raises(DkpError, match="outside the cached candidate frames"):
        cached(outside, x[:1])


@pytest.mark.slow
def test_cached_targets_are_the_frames_the_phase_draws(trained, monkeypatch, stage_runtime):
    """classifier.drawn_rows, which the cached table classifies, replays the phase's draws: the
    rows its steps look up are those rows, every one of them and no other."""
    from dkp.train import classifier, kd

    work, _ = trained
    monkeypatch.chdir(work)
    p, teacher, t_entry, ctx, n = _kd_setup(work)
    cfg, aug, seed = p["train"]["plain_student"], p["train"]["augment"], SEED + 1
    seen = []

    def targets(rows: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        seen.append(np.array(rows))
        return torch.zeros(len(rows), n)

    kd.fit(p, teacher, t_entry, ctx, seed, n, targets)
    assert len(seen) == cfg["epochs"] * -(-len(ctx.train) // cfg["batch_videos"])
    drawn = classifier.drawn_rows(ctx.train, cfg, aug, seed)
    np.testing.assert_array_equal(np.unique(np.concatenate(seen)), drawn)
    assert np.isin(drawn, kd.candidate_rows(ctx.train, cfg["within_activity"])).all()


@pytest.mark.slow
def test_missing_teacher_is_one_line(tiny_data, tmp_path):
    work = workdir_with_data(tiny_data, tmp_path / "w")
    res = dkp_cmd(work, "train-student", "--seed", str(SEED))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "train-teacher" in res.stderr


@pytest.mark.slow
def test_another_seed_trains_its_own_teacher_in_its_own_folders(trained, tiny_data, tmp_path):
    """--seed picks the seed: another seed of run.seeds gives other weights, in its own seed-N
    folders and its own resume folder, and leaves the first seed's outputs alone; a seed not in
    run.seeds is refused with one line."""
    ref, _ = trained
    work = workdir_with_data(tiny_data, tmp_path / "w")
    shutil.copytree(ref / "models", work / "models")
    shutil.copytree(ref / ".dkp-cache", work / ".dkp-cache")
    before = (work / "models" / f"seed-{SEED}" / "teacher.pt").read_bytes()
    other = 1
    res = dkp_cmd(work, "train-teacher", "--seed", str(other))
    assert res.returncode == 0, res.stderr
    assert (work / "models" / f"seed-{SEED}" / "teacher.pt").read_bytes() == before
    a = torch.load(work / "models" / f"seed-{SEED}" / "teacher.pt", weights_only=True)
    b = torch.load(work / "models" / f"seed-{other}" / "teacher.pt", weights_only=True)
    sa, sb = a["backbones"]["teacher"]["state_dict"], b["backbones"]["teacher"]["state_dict"]
    assert not all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (work / "results/train" / f"seed-{other}" / "teacher.csv").exists()
    # one resume folder per seed
    assert len(list((work / ".dkp-cache/train/teacher").iterdir())) == 2
    res = dkp_cmd(work, "train-teacher", "--seed", "9")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "expected one of run.seeds [0, 1], found 9" in res.stderr


@pytest.mark.slow
def test_subset_without_a_readable_video_stops_training_with_one_line(tiny_params, tmp_path):
    """Every video bad: ingest, extraction and the data report record them all and succeed; training
    then finds an empty subset and stops with one line, writing no model, log, resume state or
    temporary."""
    _write_bad_videos(tmp_path / "videos")
    bad = [
        (vid, M.entry(subset, 10.0, [("Run", 0.0, 5.0)]))
        for vid, (subset, _, _) in BAD_VIDEOS.items()
    ]
    M.write_activitynet(tmp_path / "anet.json", ["Run", "Jump"], bad)
    p = json.loads(json.dumps(tiny_params))
    p["data"].update(
        source="activitynet", annotations="anet.json", videos="videos", tune_subset=None
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for stage in ("data", "frames", "data-report"):
        res = dkp(tmp_path, stage)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    report = json.loads((tmp_path / "results/data_report.json").read_text())
    assert [s["ok"] for s in report["subsets"].values()] == [0, 0]
    assert len(report["skipped"]) == len(BAD_VIDEOS)
    before = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*"))
    res = dkp(tmp_path, "train-teacher", "--seed", "0")
    assert one_line_error(res), res.stderr
    assert "no usable video in subset 'training'" in res.stderr
    assert sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_dkp_step_clips_the_global_gradient_norm(clip):
    """With train.student.grad_clip, one plain SGD step moves the trained parameters by at most
    lr x grad_clip in total (the norm of all their gradients together); without it, by more."""
    from dkp.models import build_backbone
    from dkp.models.dkp import DKP
    from dkp.train.dkp_phase import StepInputs, dkp_step

    torch.manual_seed(0)
    C, B, ns, nt, lr = 5, 2, 3, 2, 1.0
    student, teacher = (
        build_backbone({"arch": "resnet18", "width": 0.125}, C),
        build_backbone({"arch": "resnet18", "width": 0.25}, C).eval().requires_grad_(False),
    )
    dkp = DKP(student.feature_dim, teacher.feature_dim, C, 2, 16, "sinusoidal", 1.0, 0.0, 1.0)
    dkp.init_heads(teacher.head, student.head)
    params = [q for q in [*student.parameters(), *dkp.parameters()] if q.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    cfg = {"lambda_feat": 1.0, "lambda_kd": 1.0, "tau": 4.0, "grad_clip": clip}
    inputs = StepInputs(
        xs=torch.rand(B * ns, 3, 32, 32),
        xt=torch.rand(B * ns, 3, 32, 32),
        gt=torch.rand(B * nt, 3, 32, 32),
        u=torch.rand(B, ns),
        v=torch.rand(B, nt),
        f_mask=torch.ones(B, ns, dtype=torch.bool),
        g_mask=torch.ones(B, nt, dtype=torch.bool),
        y=torch.tensor([0, 3]),
    )
    before = torch.cat([q.detach().flatten().clone() for q in params])
    terms, _, _ = dkp_step((student, dkp, teacher), inputs, opt, sched, cfg, torch.device("cpu"))
    after = torch.cat([q.detach().flatten() for q in params])
    moved = float((after.double() - before.double()).norm())  # float64: the step as taken
    assert np.isfinite(terms["total"])
    if clip is None:
        assert moved > 1e-2
    else:
        # clip_grad_norm_'s float32 norm: per tensor (<= n_max squares), then over the tensors;
        # the scaled gradient and the update each round once (the update relative to the
        # parameter, not to the step)
        n_max = max(q.numel() for q in params)
        norm_err = 0.5 * (gamma(n_max) + gamma(len(params))) + 2 * U32
        bound = lr * clip * (1 + norm_err) + U32 * float(after.double().norm())
        assert moved <= bound, (moved, bound)


def test_loader_gives_the_same_steps_whatever_the_number_of_workers():
    """Two epochs' plans read through one StepReader by 0, 1 or 2 worker processes: the same
    tensors, in the same order, and the same draws from the global torch RNG. More steps than ring
    slots, so slots are reused; the second plan's steps are larger, so the ring grows between
    plans."""
    from dkp.train import loader

    rng = np.random.default_rng(5)
    sizes = rng.integers(3, 13, 20)
    frames = [rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for n in sizes]
    times = [np.arange(len(f), dtype=np.float64) for f in frames]
    vs = VideoSet(
        ids=[f"v{k:02d}" for k in range(len(sizes))],
        labels=np.arange(len(sizes)),
        durations=sizes.astype(float),
        segments=[[[0, 99]]] * len(sizes),
        frames=frames,
        times=times,
    )

    def plan(rng, per_video):
        return [
            {
                "x": [
                    (int(i), int(j))
                    for i in vids
                    for j in batches.tsn_indices(rng, np.arange(vs.n_frames(i)), per_video)
                ],
                "aug": batches.draw_augment(rng, per_video * len(vids), 2, True, True, True),
            }
            for vids in batches.epoch_batches(rng, len(vs), 3)
        ]

    runs, torch_states = [], []
    for workers in (0, 1, 2):
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        reader = loader.StepReader(vs, ("x",), workers, 2, torch.device("cpu"))
        assert workers == 0 or reader.slots < len(plan(np.random.default_rng(0), 1))
        # each step used at once, as the training loops do: its frames are a ring slot's until then
        runs.append(
            [
                batches.apply_augment(s["x"].permute(0, 3, 1, 2), s["aug"])
                for per_video in (1, 3)
                for s in reader(plan(rng, per_video))
            ]
        )
        torch_states.append(torch.get_rng_state())
    # the global torch stream (dropout draws from it) moves the same whatever the workers
    assert all(torch.equal(t, torch_states[0]) for t in torch_states)
    torch.manual_seed(0)
    assert not torch.equal(torch.get_rng_state(), torch_states[0])  # one draw per plan
    rng = np.random.default_rng(0)
    expect = [
        batches.apply_augment(torch.from_numpy(vs.gather(s["x"])).permute(0, 3, 1, 2), s["aug"])
        for s in plan(rng, 1) + plan(rng, 3)
    ]
    assert [len(r) for r in runs] == [len(expect)] * 3 == [14] * 3
    for run in runs:
        assert all(torch.equal(a, b) for a, b in zip(run, expect))
    # the planned draws are the ones augment makes from the same generator in the same order
    x = torch.from_numpy(frames[1]).permute(0, 3, 1, 2)
    a = batches.augment(x, np.random.default_rng(3), 2, True, True, True)
    b = batches.apply_augment(
        x, batches.draw_augment(np.random.default_rng(3), len(x), 2, True, True, True)
    )
    assert torch.equal(a, b)


# A training process reading steps through two loader workers, killed while it waits on its
# step: the workers have read ahead (prefetch) and wait for more.
_LOADER_HELD = """
import sys, time
import numpy as np, torch
from dkp.train import loader
from dkp.train.data import VideoSet
frames = [np.zeros((6, 8, 8, 3), dtype=np.uint8) for _ in range(40)]
vs = VideoSet(ids=[f"v{k}" for k in range(40)], labels=np.zeros(40, dtype=int),
              durations=np.full(40, 6.0), segments=[[[0, 99]]] * 40, frames=frames,
              times=[np.arange(6, dtype=np.float64)] * 40)
steps = loader.steps(vs, [{"x": [(k, 0), (k, 1)]} for k in range(40)], ("x",), 2, 2,
                     torch.device("cpu"))
next(steps)
open(sys.argv[1], "w").close()
time.sleep(600)
"""


def test_loader_workers_die_with_the_training_process(tmp_path):
    """kill -9 of a process reading through loader workers, the workers held stopped: the kernel
    ends them when it dies (stopped, they cannot end by themselves; torch's own watch looks for
    the parent every 5 s, and only between steps)."""
    import sys

    ready = tmp_path / "reading"
    rc, children, err = signal_when(
        tmp_path,
        [sys.executable, "-c", _LOADER_HELD, str(ready)],
        signal.SIGKILL,
        ready.exists,
        120,
        resume_children=False,
    )
    assert rc == -signal.SIGKILL, (rc, err[-2000:])
    assert len(children) == 2, children
    assert outliving(children) == [], "loader workers outlived the training process"


@pytest.mark.slow
def test_teacher_with_loader_workers_ends_bit_identical(trained, tiny_data, tmp_path):
    """train.loader.workers 2 instead of 0: the same checkpoint and log, byte for byte but the
    timings."""
    import yaml

    ref, _ = trained
    work = workdir_with_data(tiny_data, tmp_path / "w")
    p = yaml.safe_load((work / "params.yaml").read_text())
    assert p["train"]["loader"]["workers"] == 0
    p["train"]["loader"]["workers"] = 2
    (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = dkp_cmd(work, "train-teacher", "--seed", str(SEED))
    assert res.returncode == 0, res.stderr
    name = f"models/seed-{SEED}/teacher.pt"
    assert (work / name).read_bytes() == (ref / name).read_bytes()
    log = pd.read_csv(work / f"results/train/seed-{SEED}/teacher.csv")
    ref_log = pd.read_csv(ref / f"results/train/seed-{SEED}/teacher.csv")
    pd.testing.assert_frame_equal(log.drop(columns="seconds"), ref_log.drop(columns="seconds"))


def test_ranks_share_every_step_contiguously():
    from dkp.train.distributed import Group, share_step

    step = {
        "x": [(0, k) for k in range(7)],
        "y": np.arange(7),
        "aug": {"pad": 4, "dy": np.arange(7)},
        "u": 1,
    }
    parts = [share_step(step, Group(r, 3), ("x", "y")) for r in range(3)]
    assert [len(s["x"]) for s in parts] == [2, 3, 2] and all(s["n"] == 7 for s in parts)
    assert sum((s["x"] for s in parts), []) == step["x"]
    assert np.concatenate([s["aug"]["dy"] for s in parts]).tolist() == list(range(7))
    assert all(s["aug"]["pad"] == 4 and s["u"] == 1 for s in parts)


def test_dkp_steps_share_videos_and_a_rank_may_get_none():
    """Videos with their own counts (3 and 1 student frames, 2 and 2 teacher frames): each rank's
    share holds its videos' rows, masks and frames, the augmentation following the student
    frames."""
    from dkp.train.distributed import Group, share_videos

    f_mask = np.array([[True, True, True], [True, False, False]])
    g_mask = np.ones((2, 2), dtype=bool)
    step = {
        "y": np.arange(2),
        "u": np.arange(6).reshape(2, 3),
        "f_mask": f_mask,
        "g_mask": g_mask,
        "xs": [(0, 0), (0, 1), (0, 2), (1, 0)],
        "gt": [(0, 0), (0, 1), (1, 0), (1, 1)],
        "aug": {"dy": np.arange(4), "pad": 4},
    }
    parts = [
        share_videos(
            step, Group(r, 3), ("y", "u", "f_mask", "g_mask"), {"xs": "f_mask", "gt": "g_mask"}
        )
        for r in range(3)
    ]
    assert [len(s["y"]) for s in parts] == [1, 0, 1]
    assert [s["share"] for s in parts] == [0.5, 0.0, 0.5]
    assert [s["xs"] for s in parts] == [[(0, 0), (0, 1), (0, 2)], [], [(1, 0)]]
    assert sum((s["gt"] for s in parts), []) == step["gt"]
    assert np.concatenate([s["u"] for s in parts]).tolist() == step["u"].tolist()
    assert [s["aug"]["dy"].tolist() for s in parts] == [[0, 1, 2], [], [3]]
    assert all(s["aug"]["pad"] == 4 for s in parts)


def test_training_draws_follow_the_evaluation_rule():
    """The DKP phase's steps: one configuration of the sweep per step, each video fed the counts it
    asks of that video, distinct frames by evaluation's rule (the centre of each segment at test
    time, a random point in it in training): with the centres the same frames as the sweep."""
    from dkp import configs as configs_mod
    from dkp import sampling
    from dkp.train.data import VideoSet
    from dkp.train.dkp_phase import plan_epoch

    p = yaml.safe_load((REPO / "params.yaml").read_text())
    rng = np.random.default_rng(0)
    durations = np.array([3.0, 20.0, 57.5, 150.0])
    times = [np.sort(rng.uniform(0, d, int(d * 4) + 100)) for d in durations]
    videos = VideoSet(
        [f"v{i}" for i in range(4)], np.arange(4), durations, [[]] * 4, [None] * 4, times
    )
    pairs = [c for c in configs_mod.build(p) if c.method in ("dkp", "dste")]
    cfg = {"batch_videos": 4, "max_frames_per_step": 10_000}
    aug = {"crop_pad": 0, "flip": False, "rot90": False, "channel_shuffle": False}
    by_name = {c.name: c for c in pairs}
    for step in plan_epoch(np.random.default_rng(1), videos, pairs, cfg, aug):
        c = by_name[step["config"]]
        shown = list(dict.fromkeys(i for i, _ in step["xs"]))  # the step's videos, in order
        assert len(shown) == len(step["y"])
        for row, i in enumerate(shown):
            ns, nt = sampling.role_counts(c, float(durations[i]))
            got_s = [j for k, j in step["xs"] if k == i]
            got_t = [j for k, j in step["gt"] if k == i]
            assert len(got_s) == step["f_mask"][row].sum() == ns  # dense frames: all distinct
            assert len(got_t) == step["g_mask"][row].sum() == nt
            assert got_s == sorted(set(got_s))
    # the one rule: training's draw with the segment centres is the sweep's sampling
    for c in pairs[:6]:
        for t, d in zip(times, durations):
            assert np.array_equal(
                sampling.distinct_indices(t, d, sampling.role_counts(c, d)[0], 0.5),
                sampling.config_indices(c, "s", t, d),
            )


INPUT_KEYS = ("xs", "xt", "gt", "u", "v", "f_mask", "g_mask", "y")


def _dkp_case():
    """Networks, optimiser and one step's inputs for 2 videos, the same in every process. BatchNorm
    in inference mode and no dropout, so a step does not depend on how its videos are split."""
    from dkp.models import build_backbone
    from dkp.models.dkp import DKP

    torch.manual_seed(0)
    C, B, ns, nt = 5, 2, 3, 2
    student = build_backbone({"arch": "resnet18", "width": 0.125}, C).eval()
    teacher = build_backbone({"arch": "resnet18", "width": 0.25}, C).eval().requires_grad_(False)
    dkp = DKP(student.feature_dim, teacher.feature_dim, C, 2, 16, "sinusoidal", 1.0, 0.0, 1.0)
    dkp.init_heads(teacher.head, student.head)
    params = [q for q in [*student.parameters(), *dkp.parameters()] if q.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    # the second video has one student frame fewer: a ragged step, as fixed sampling gives
    f_mask = torch.tensor([[True] * ns, [True] * (ns - 1) + [False]])
    step = {
        "y": torch.tensor([0, 3]),
        "u": torch.rand(B, ns),
        "v": torch.rand(B, nt),
        "f_mask": f_mask,
        "g_mask": torch.ones(B, nt, dtype=torch.bool),
        "xs": torch.rand(2 * ns - 1, 3, 32, 32),
        "xt": torch.rand(2 * ns - 1, 3, 32, 32),
        "gt": torch.rand(B * nt, 3, 32, 32),
    }
    cfg = {"lambda_feat": 1.0, "lambda_kd": 1.0, "tau": 4.0, "grad_clip": 1.0}
    return student, dkp, teacher, params, opt, sched, cfg, step


def _dkp_rank(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from dkp.train.distributed import Group, share_videos
    from dkp.train.dkp_phase import StepInputs, dkp_step

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    student, dkp, teacher, params, opt, sched, cfg, step = _dkp_case()
    mine = share_videos(
        step,
        Group(rank, world),
        ("y", "u", "v", "f_mask", "g_mask"),
        {"xs": "f_mask", "xt": "f_mask", "gt": "g_mask"},
    )
    inputs = StepInputs(**{k: mine[k] for k in INPUT_KEYS}) if len(mine["y"]) else None
    terms, hits, _ = dkp_step(
        (student, dkp, teacher),
        inputs,
        opt,
        sched,
        cfg,
        torch.device("cpu"),
        Group(rank, world),
        mine["share"],
    )
    torch.save({"params": [q.detach() for q in params], "terms": terms, "hits": hits}, out)
    dist.destroy_process_group()


def test_dkp_step_on_three_gloo_ranks_equals_one_process(tmp_path):
    """Three ranks share a step of 2 videos (one rank gets none): the summed, share-weighted
    gradients move the parameters as one process does, and the ranks' terms add up to its (fp32,
    conftest.fp32_in_process; the forked ranks inherit it)."""
    import multiprocessing

    from dkp.train.dkp_phase import StepInputs, dkp_step

    student, dkp, teacher, params, opt, sched, cfg, step = _dkp_case()
    ref_terms, ref_hits, _ = dkp_step(
        (student, dkp, teacher),
        StepInputs(**{k: step[k] for k in INPUT_KEYS}),
        opt,
        sched,
        cfg,
        torch.device("cpu"),
    )
    ctx = multiprocessing.get_context("fork")
    outs = [tmp_path / f"rank{r}.pt" for r in range(3)]
    procs = [
        ctx.Process(target=_dkp_rank, args=(r, 3, str(tmp_path / "init"), str(outs[r])))
        for r in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    got = [torch.load(o) for o in outs]
    # The ranks' share-weighted losses and gradients, summed, against one process: the same
    # float32 chain over subsets of the videos, added in another order. The step moves each
    # parameter by lr x gradient; 1e-6 + 1e-5|p| on the parameters and 1e-5 on the terms,
    # measured at most 1.2e-7 on the parameters (AVX2, AVX-512, SSE4.1 kernels).
    for rank in got:
        for q, ref in zip(rank["params"], params):
            torch.testing.assert_close(q, ref.detach(), rtol=1e-5, atol=1e-6)
    for k, v in ref_terms.items():
        assert sum(r["terms"][k] for r in got) == pytest.approx(v, rel=1e-5)
    assert sum(r["hits"] for r in got) == ref_hits and got[1]["hits"] == 0


# Per-epoch losses of 2 ranks against one process, both fp32 (params-tiny.yaml). Not rounding:
# each rank normalises its half of a step with its own BatchNorm statistics, over m = 16 frames
# (the 8 training videos halved, x 4 segments) instead of 32, so a rank's batch mean lies about
# 1/sqrt(16) = 0.25 of a standard deviation from the step's; the mean cross-entropy over the
# step moves by a fraction of that, and 0.15 of the loss holds it.
BN_RANKS_RTOL = 0.15


def on_two_ranks(work: Path, stage: str) -> None:
    """`torchrun --standalone --nproc_per_node 2 dkp <stage>` in `work`, one thread a rank."""
    import sys

    torchrun = Path(sys.executable).with_name("torchrun")
    res = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", shutil.which("dkp")]
        + train_cmd(stage)[1:],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "(2 ranks)" in res.stdout


@pytest.mark.slow
def test_teacher_on_two_gloo_ranks_matches_one_process(trained, tiny_data, tmp_path):
    """torchrun, 2 CPU processes (gloo), the same global batch: one checkpoint and one log, written
    by rank 0, and per-epoch training losses within 0.15 (relative) of the one-process run. They are
    not identical: each rank normalises its half of a step with its own BatchNorm statistics (no
    SyncBatchNorm on CPU; on GPUs it is used)."""
    ref, _ = trained
    work = workdir_with_data(tiny_data, tmp_path / "w")
    on_two_ranks(work, "train-teacher")
    log = pd.read_csv(work / f"results/train/seed-{SEED}/teacher.csv")
    ref_log = pd.read_csv(ref / f"results/train/seed-{SEED}/teacher.csv")
    assert list(log["epoch"]) == list(ref_log["epoch"])
    np.testing.assert_allclose(log["loss"], ref_log["loss"], rtol=BN_RANKS_RTOL)
    from dkp import checkpoints

    ckpt = checkpoints.read(work / f"models/seed-{SEED}/teacher.pt", "teacher")
    assert set(ckpt["backbones"]) == {"teacher"}


@pytest.mark.slow
def test_student_on_two_gloo_ranks_matches_one_process(trained, tiny_data, tmp_path):
    """Both phases of train-student on 2 CPU processes (gloo), from the same teacher: one
    checkpoint and one log, written by rank 0, the DKP rows scored on the validation frames, and
    per-epoch training losses within 0.15 (relative) of the one-process run (per-rank BatchNorm
    statistics, dkp.train.distributed)."""
    ref, _ = trained
    work = workdir_with_data(tiny_data, tmp_path / "w")
    (work / f"models/seed-{SEED}").mkdir(parents=True)
    shutil.copy(ref / f"models/seed-{SEED}/teacher.pt", work / f"models/seed-{SEED}/teacher.pt")
    on_two_ranks(work, "train-student")
    log = pd.read_csv(work / f"results/train/seed-{SEED}/student.csv")
    ref_log = pd.read_csv(ref / f"results/train/seed-{SEED}/student.csv")
    assert list(log["phase"]) == list(ref_log["phase"])
    assert list(log["epoch"]) == list(ref_log["epoch"])
    np.testing.assert_allclose(log["loss"], ref_log["loss"], rtol=BN_RANKS_RTOL)
    dkp_rows = log[log["phase"] == "dkp"]
    assert dkp_rows["val_acc"].notna().iloc[-1] and dkp_rows["val_acc_kd"].notna().iloc[-1]
    from dkp import checkpoints

    ckpt = checkpoints.read(work / f"models/seed-{SEED}/student.pt", "student")
    assert set(ckpt["backbones"]) == {"student", "student_plain", "student_kd"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_teacher_on_two_slurm_nodes_of_localhost_matches_one_process(trained, tiny_data, tmp_path):
    """Two `dkp train-teacher` processes given the variables srun gives the 2 tasks of a 2-node job
    (node list `localhost`): each execs its node's torchrun agent (--nnodes 2, c10d rendezvous at
    the first host, dkp.launch), one CPU rank a node over gloo. One checkpoint and one log, written
    by rank 0, and per-epoch losses within the 2-rank test's tolerance of the one-process run."""
    ref, _ = trained
    work = workdir_with_data(tiny_data, tmp_path / "w")
    port = _free_port()
    procs = []
    for node in (0, 1):
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NUM_NODES": "2",
            "SLURM_NNODES": "2",
            "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(node),
            "SLURM_NODEID": str(node),
            "SLURM_LOCALID": "0",
            "SLURM_JOB_NODELIST": "localhost",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                train_cmd("train-teacher"),
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outs]
    stdout = "".join(out for out, _ in outs)
    assert stdout.count("(2 ranks)") == 1, stdout  # rank 0 alone reports, and writes
    log = pd.read_csv(work / f"results/train/seed-{SEED}/teacher.csv")
    ref_log = pd.read_csv(ref / f"results/train/seed-{SEED}/teacher.csv")
    assert list(log["epoch"]) == list(ref_log["epoch"])
    np.testing.assert_allclose(log["loss"], ref_log["loss"], rtol=0.15)
    from dkp import checkpoints

    ckpt = checkpoints.read(work / f"models/seed-{SEED}/teacher.pt", "teacher")
    assert set(ckpt["backbones"]) == {"teacher"}


def _peak_mb(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    """Run a command; the peak over its run of its process tree's memory (the sum of PSS: pages
    shared between its processes counted once, as a cgroup counts them), sampled every 50 ms."""
    import psutil

    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    root, peak = psutil.Process(proc.pid), 0.0
    while proc.poll() is None:
        total = 0
        try:
            for q in [root, *root.children(recursive=True)]:
                total += q.memory_full_info().pss
        except psutil.Error:
            pass
        peak = max(peak, total / 2**20)
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    return peak


@pytest.mark.slow
def test_memory_request_covers_the_measured_peak_extrapolated(tiny_data, tmp_path):
    """dkp.resources' memory model against train-teacher's measured peak at two scales of the
    tiny data (A: the tiny params; B: 4x the input side, 4x the frames a step, loader workers),
    extrapolated linearly in the model's own total to the ActivityNet preset's sizes on the CPU:
    the request there covers the extrapolated peak; and each measured peak is within its own
    request. The GPU request swaps the activations for a CUDA context (not measurable here)."""
    from dkp import resources

    def scaled(name: str, edit) -> tuple[dict, Path]:
        work = workdir_with_data(tiny_data, tmp_path / name)
        p = yaml.safe_load((work / "params.yaml").read_text())
        p["train"]["teacher"]["epochs"] = 1
        edit(p)
        (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        return p, work

    def bigger(p):
        p["teacher"]["input_size"] *= 4
        p["train"]["teacher"]["segments"] *= 4
        p["train"]["loader"].update(workers=2, prefetch=2)

    runs = {"A": scaled("a", lambda p: None), "B": scaled("b", bigger)}
    manifest = pd.read_csv(tiny_data / "data/manifest.csv", dtype={"subset": str, "status": str})
    counts = resources.manifest_counts(runs["A"][0], manifest)
    peak, model = {}, {}
    for name, (p, work) in runs.items():
        peak[name] = _peak_mb(train_cmd("train-teacher"), work)
        model[name] = resources.train_mem_total(p, "train-teacher", counts)
        assert peak[name] <= resources.train_mem_mb(p, "train-teacher", counts), (name, peak)
    assert model["B"] - model["A"] > 200  # the scales differ by far more than the sampling noise
    slope = (peak["B"] - peak["A"]) / (model["B"] - model["A"])
    preset = yaml.safe_load((Path(__file__).parents[1] / "configs/activitynet.yaml").read_text())
    durations = resources.reference_durations("activitynet")
    big = {
        "train": 9649,
        "monitor": 4728,
        "frames": int(resources.frames_per_video(preset, durations).sum()),
        "longest": float(durations.max()),
    }
    at_preset = peak["A"] + max(slope, 0.0) * (
        resources.train_mem_total(preset, "train-teacher", big) - model["A"]
    )
    request = resources.train_mem_mb(preset, "train-teacher", big)
    print(
        f"\n[memory] peaks {peak} MB, model {model} MB, slope {slope:.2f}; "
        f"ActivityNet preset on the CPU: extrapolated {at_preset:.0f} MB, request {request} MB"
    )
    assert request >= at_preset


def test_train_bench_runs_every_phase_through_the_stages_own_code(tiny_data, tmp_path):
    """bench/train_bench.py drives the stages' own epoch and step functions: a change to their
    signatures breaks it here, not when the bench is next re-measured."""
    import sys

    out = tmp_path / "bench.json"
    res = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "bench" / "train_bench.py"),
            "--params",
            "params.yaml",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--threads",
            "1",
            "--breakdown",
            "--json",
            str(out),
        ],
        cwd=tiny_data,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    phases = {r["phase"]: r for r in json.loads(out.read_text())["phases"]}
    assert set(phases) == {"teacher", "plain", "dkp"}
    for r in phases.values():
        assert r["steps_per_round"] >= 1 and r["real_fps_best"] > 0 and r["raw_fps_best"] > 0
        assert r["ms_per_step_gather"] > 0 and 0 < r["data_path_share"] < 1
