"""The synthetic dataset generator: pure specs and renderer, and `dkp synthesize` end to end."""

from __future__ import annotations

import dataclasses
import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av  # noqa: F401  before decord: decord's FFmpeg loaded first breaks PyAV's libvpx-vp9 encoder (test_ingest)
import numpy as np
import pytest
import yaml
from fixtures.interrupt import _alive, outliving, signal_when

from dkp.synthetic import annotations, classes, render, spec

decord = pytest.importorskip("decord")

REPO = Path(__file__).resolve().parents[1]


def _default_params(repo: Path) -> dict:
    with open(repo / "params.yaml") as fh:
        return yaml.safe_load(fh)


def _specs(p: dict) -> list[spec.VideoSpec]:
    d = p["data"]
    return spec.make_specs(d["synthetic"], d["train_subset"], d["val_subset"], d["tune_subset"])


def _synthesize(workdir: Path, params: dict, *extra: str) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return subprocess.run(
        ["dkp", "synthesize", "--params", "params.yaml", *extra],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---------------------------------------------------------------- classes


def test_class_tiles_are_distinct_under_shift_rotation_and_flip():
    tiles = [classes.tile(c) for c in range(classes.NUM_CLASSES)]
    assert all(t.sum() == 8 for t in tiles)  # same density: the mean colour says nothing
    for a, b in itertools.combinations(range(classes.NUM_CLASSES), 2):
        d = classes.tile_distance(tiles[a], tiles[b])
        same_shape = classes.class_parts(a)[0] == classes.class_parts(b)[0]
        assert d >= (4 if same_shape else 2), (classes.class_name(a), classes.class_name(b), d)


def test_class_order_mixes_shapes_and_variants():
    parts = [classes.class_parts(c) for c in range(classes.NUM_CLASSES)]
    assert len(set(parts)) == classes.NUM_CLASSES
    names = [classes.class_name(c) for c in range(classes.NUM_CLASSES)]
    assert len(set(names)) == classes.NUM_CLASSES and names[0] == "disk-weave-a"
    first4 = parts[:4]
    assert {s for s, _ in first4} == set(range(4)) and len({v for _, v in first4}) == 4


# ---------------------------------------------------------------- specs on the default parameters


def _tiny_params(repo: Path) -> dict:
    with open(repo / "tests" / "params-tiny.yaml") as fh:
        return yaml.safe_load(fh)


def _annotation_stats(doc: dict, time_scale: float) -> dict[str, np.ndarray]:
    """Per-video statistics of an annotation file, durations in reference (unscaled) seconds."""
    entries = list(doc["database"].values())
    dur = np.array([e["duration"] for e in entries])
    segs = [np.array([a["segment"] for a in e["annotations"]]) for e in entries]
    return {
        "duration": dur / time_scale,
        "coverage": np.array([(s[:, 1] - s[:, 0]).sum() for s in segs]) / dur,
        "segments": np.array([len(s) for s in segs]),
        "first_start": np.array([s[0, 0] for s in segs]) / time_scale,
        "last_gap": np.array([d - s[-1, 1] for d, s in zip(dur, segs)]) / time_scale,
    }


def _tol(p: float, n: int) -> float:
    """Three binomial standard errors of an empirical CDF at probability p over n videos.

    For n independent draws a check fails by chance about 0.3 % of the time; the generator
    stratifies, so its own error is nearer 1/n. At n = 880: 0.03 at p10/p90, 0.05 at the median;
    per duration bin (87-242 videos) 0.10-0.16 at the median.
    """
    return 3 * np.sqrt(p * (1 - p) / n)


QUANTILE_CHECKS = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}


def reference_mismatches(stats: dict[str, np.ndarray]) -> list[str]:
    """Every statistic of a generated set outside its tolerance around the ActivityNet reference.

    A quantile q_p of the reference matches when the generated set's empirical CDF at q_p lies
    within _tol(p, n) of p (tolerance in probability terms, so it means the same at every
    quantile); counts compare with three standard errors.
    """
    ref, out = spec.reference(), []
    n = stats["duration"].size

    def ecdf_check(name: str, values: np.ndarray, quantiles: dict, keys) -> None:
        for key in keys:
            p = QUANTILE_CHECKS[key]
            got = float(np.mean(values <= quantiles[key]))
            if abs(got - p) > _tol(p, values.size):
                tol = _tol(p, values.size)
                out.append(
                    f"{name} {key}: F({quantiles[key]:g}) = {got:.3f}, expected {p} +- {tol:.3f}"
                )

    ecdf_check("duration", stats["duration"], ref["duration_s_trainval"], ("p10", "median", "p90"))
    ecdf_check("coverage", stats["coverage"], ref["coverage_fraction_union"], QUANTILE_CHECKS)
    p1 = ref["frac_videos_with_1_segment"]
    got = float(np.mean(stats["segments"] == 1))
    if abs(got - p1) > _tol(p1, n):
        out.append(f"one segment: {got:.3f}, expected {p1} +- {_tol(p1, n):.3f}")
    k = ref["segments_per_video"]
    se = 3 * k["std"] / np.sqrt(n)
    if abs(stats["segments"].mean() - k["mean"]) > se:
        out.append(
            f"segments per video: mean {stats['segments'].mean():.3f}, expected {k['mean']} +- "
            f"{se:.3f}"
        )
    bins = spec.bin_index(ref, stats["duration"])
    for b, (name, _, _) in enumerate(spec.duration_bins(ref)):
        m = bins == b
        ecdf_check(
            f"coverage in {name}",
            stats["coverage"][m],
            ref["by_duration_bin"][name]["coverage_fraction"],
            ("median",),
        )
        mean, se = (
            ref["by_duration_bin"][name]["segments_per_video_mean"],
            3 * k["std"] / np.sqrt(m.sum()),
        )
        if abs(stats["segments"][m].mean() - mean) > se:
            out.append(
                f"segments per video in {name}: mean {stats['segments'][m].mean():.3f}, "
                f"expected {mean} +- {se:.3f}"
            )
    return out


def _doc(syn: dict) -> dict:
    return annotations.build(spec.make_specs(syn), syn["num_classes"])


@pytest.mark.parametrize("time_scale", [None, 1.0, 0.25])
def test_default_annotations_match_activitynet_statistics(repo, time_scale):
    """The default set's annotation file, overall and per duration bin, against ActivityNet v1.3
    train+val; the same with real lengths (time_scale 1) and shorter ones: only lengths scale."""
    syn = dict(_default_params(repo)["data"]["synthetic"])
    if time_scale is not None:
        syn["time_scale"] = time_scale
    stats = _annotation_stats(_doc(syn), syn["time_scale"])
    assert stats["duration"].size == 880
    assert reference_mismatches(stats) == []


def test_reference_check_rejects_the_old_uniform_coverage(repo):
    """The same durations with coverage uniform in 0.2-0.8 and one or two segments (the generator
    before ActivityNet statistics) fail the check, overall and in the bins."""
    syn = _default_params(repo)["data"]["synthetic"]
    rng = np.random.default_rng(0)
    specs = [
        dataclasses.replace(
            s,
            segments=spec.make_segments(
                rng, s.n_frames, rng.uniform(0.2, 0.8), 1 + int(rng.random() < 0.5)
            ),
        )
        for s in spec.make_specs(syn)
    ]
    bad = reference_mismatches(
        _annotation_stats(annotations.build(specs, syn["num_classes"]), syn["time_scale"])
    )
    for fragment in ("coverage p10", "coverage p90", "coverage in 0-30s median", "one segment"):
        assert any(m.startswith(fragment) for m in bad), (fragment, bad)


def test_segment_placement_is_plausible(repo):
    """First start and the gap after the last segment spread like ActivityNet's. They follow
    from coverage and count (the reference gives them overall only); quantiles under two frames
    of the grid are left out, as the grid rounds them to zero or one frame."""
    syn = _default_params(repo)["data"]["synthetic"]
    stats = _annotation_stats(_doc(syn), syn["time_scale"])
    ref, n = spec.reference(), stats["duration"].size
    grid = 1 / (syn["fps"] * syn["time_scale"])  # one frame, in reference seconds
    checked = 0
    for name, key in (
        ("first_start", "first_segment_start_s"),
        ("last_gap", "gap_after_last_segment_s"),
    ):
        for q, p in QUANTILE_CHECKS.items():
            if ref[key][q] >= 2 * grid:
                got = float(np.mean(stats[name] <= ref[key][q]))
                assert abs(got - p) <= _tol(p, n), (name, q, got)
                checked += 1
    assert checked == 6
    # activity from the first frame, as in over 10 % of ActivityNet
    assert np.mean(stats["first_start"] == 0) > 0.1


def test_default_specs_structure_and_balance(repo):
    p = _default_params(repo)
    syn = p["data"]["synthetic"]
    specs = _specs(p)
    assert len(specs) == syn["num_classes"] * (
        syn["train_per_class"] + syn["val_per_class"] + syn["tune_per_class"]
    )
    for s in specs:
        assert s.n_frames >= spec.MIN_FRAMES and len(s.segments) >= 1
        bounds = [x for seg in s.segments for x in seg]
        assert bounds[0] >= 0 and bounds[-1] <= s.n_frames
        assert all(e > b for b, e in s.segments)  # at least one frame each
        # background between
        assert all(b1 > e0 for (_, e0), (b1, _) in zip(s.segments, s.segments[1:]))
    assert max(len(s.segments) for s in specs) >= 8  # the long tail of segment counts
    assert (
        min(s.coverage for s in specs) < 0.05 and np.mean([s.coverage == 1 for s in specs]) > 0.02
    )
    for subset, per_class in (
        (p["data"]["train_subset"], syn["train_per_class"]),
        (p["data"]["val_subset"], syn["val_per_class"]),
        (p["data"]["tune_subset"], syn["tune_per_class"]),
    ):
        counts = np.bincount(
            [s.class_index for s in specs if s.subset == subset], minlength=syn["num_classes"]
        )
        assert counts.tolist() == [per_class] * syn["num_classes"]
    ids = [s.vid for s in specs]
    assert len(set(ids)) == len(ids) and all(len(i) == 11 and i[0].isalnum() for i in ids)


def test_tiny_set_spans_the_reference_lengths(repo):
    """A dozen videos still reach below the reference p10 and above its p90 (stratified
    durations)."""
    syn = _tiny_params(repo)["data"]["synthetic"]
    q = spec.reference()["duration_s_trainval"]
    dur = np.array([s.duration for s in spec.make_specs(syn)]) / syn["time_scale"]
    assert dur.size == 12 and dur.min() < q["p10"] and dur.max() > q["p90"]


@pytest.mark.parametrize("n_frames", [2, 3, 5, 9, 40, 400])
def test_make_segments_keeps_frames_background_and_coverage(n_frames):
    rng = np.random.default_rng(n_frames)
    for coverage, k in itertools.product([0.0, 0.03, 0.5, 0.97, 1.0], [1, 2, 3, 7, 23]):
        segs = spec.make_segments(rng, n_frames, coverage, k)
        k_fit = min(k, (n_frames + 1) // 2)  # a frame each and a background frame between
        assert len(segs) == k_fit
        assert segs[0][0] >= 0 and segs[-1][1] <= n_frames
        assert all(e > b for b, e in segs) and all(
            b1 > e0 for (_, e0), (b1, _) in zip(segs, segs[1:])
        )
        active = sum(e - b for b, e in segs)
        assert active == min(max(round(coverage * n_frames), k_fit), n_frames - k_fit + 1)


def test_annotation_document_is_activitynet_v13(repo):
    p = _default_params(repo)
    syn = p["data"]["synthetic"]
    specs = _specs(p)
    doc = annotations.build(specs, syn["num_classes"])
    assert set(doc) == {"version", "taxonomy", "database"} and doc["version"] == "VERSION 1.3"
    nodes = doc["taxonomy"]
    assert all(set(n) == {"nodeId", "nodeName", "parentId", "parentName"} for n in nodes)
    parents = {n["parentId"] for n in nodes}
    leaves = [n["nodeName"] for n in nodes if n["nodeId"] not in parents]
    assert leaves == [classes.class_name(c) for c in range(syn["num_classes"])]
    by_id = {n["nodeId"]: n for n in nodes}
    assert all(
        n["parentId"] is None or by_id[n["parentId"]]["nodeName"] == n["parentName"] for n in nodes
    )
    assert sorted(doc["database"]) == [s.vid for s in specs]
    for s in specs:
        e = doc["database"][s.vid]
        assert set(e) == {"subset", "duration", "resolution", "url", "annotations"}
        assert e["resolution"] == f"{syn['size']}x{syn['size']}" and e["url"].endswith(s.vid)
        assert all(a["label"] == s.label for a in e["annotations"])
        # frame counts / fps (2: multiples of 0.5 s, exact in the JSON's 3 decimals); the float64
        # sum and ratio round at 1e-15
        assert (
            abs(
                sum(b - a for a, b in (x["segment"] for x in e["annotations"])) / e["duration"]
                - s.coverage
            )
            < 1e-6
        )
        assert all(0 <= a < b <= e["duration"] for a, b in (x["segment"] for x in e["annotations"]))


def test_reference_statistics_ship_with_the_package_and_name_their_source():
    ref = spec.reference()
    assert ref["source"]["repository"] == "wzmsltw/BSN-boundary-sensitive-network"
    assert ref["trainval_videos"] == 14377
    assert [name for name, _, _ in spec.duration_bins(ref)] == [
        "0-30s",
        "30-60s",
        "60-120s",
        "120-180s",
        ">=180s",
    ]
    weighted = sum(
        b["frac_of_videos"] * spec.segment_count_probs(ref, name)[1][0]
        for name, b in ref["by_duration_bin"].items()
    )
    # bin shares give back the overall one, up to the reference file's rounded fractions (4
    # decimals): a tolerance on the data, not on float rounding
    assert abs(weighted - ref["frac_videos_with_1_segment"]) < 0.005


def test_specs_follow_the_seed(repo):
    syn = _default_params(repo)["data"]["synthetic"]
    assert spec.make_specs(syn) == spec.make_specs(dict(syn))
    other = spec.make_specs({**syn, "seed": syn["seed"] + 1})
    assert [s.vid for s in other] != [s.vid for s in spec.make_specs(syn)]


# ---------------------------------------------------------------- the pure renderer


@pytest.fixture(scope="module")
def render_specs() -> list[spec.VideoSpec]:
    """Three of the shortest default videos: with an occluder, with two segments, with neither."""
    specs = sorted(_specs(_default_params(REPO)), key=lambda s: (s.n_frames, s.vid))
    return [
        next(s for s in specs if s.occluder),
        next(s for s in specs if len(s.segments) == 2),
        next(s for s in specs if not s.occluder and len(s.segments) == 1),
    ]


def test_frame_is_a_pure_function_of_spec_and_index(render_specs):
    for s in render_specs:
        video = render.render_frames(s, np.arange(s.n_frames))
        assert video.shape == (s.n_frames, s.size, s.size, 3) and video.dtype == np.uint8
        for k in (0, s.segments[0][0], s.n_frames - 1):
            assert np.array_equal(render.render_frames(s, [k])[0], video[k])
        assert not np.array_equal(video[0], video[1])  # noise and motion: frames are not copies


def test_background_frames_are_the_scene_without_the_object(render_specs):
    """Outside the object's visible pixels an activity frame equals the same frame with no
    activity."""
    for s in render_specs:
        frames = np.arange(s.n_frames)
        act = s.active(frames)
        mask = render.object_mask(s, frames)
        assert not mask[~act].any()  # no object outside the segments
        assert (mask[act].reshape(act.sum(), -1).sum(1) > 0.05 * s.size**2).all()  # visible inside
        empty = dataclasses.replace(s, segments=())
        with_obj, without = render.render_frames(s, frames), render.render_frames(empty, frames)
        assert np.array_equal(with_obj[~act], without[~act])
        outside = (mask == 0)[..., None].repeat(3, -1)
        assert np.array_equal(with_obj[act][outside[act]], without[act][outside[act]])
        inside = (mask > 0.99)[..., None].repeat(3, -1)
        assert (with_obj[inside] != without[inside]).mean() > 0.5


def test_renderer_rejects_frames_outside_the_video(render_specs):
    s = render_specs[0]
    with pytest.raises(ValueError, match="outside"):
        render.render_frames(s, [s.n_frames])


# ---------------------------------------------------------------- dkp synthesize end to end


def _decode(path: Path, idx) -> np.ndarray:
    return decord.VideoReader(str(path)).get_batch(list(idx)).asnumpy()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The tiny dataset (size 64 so frames are realistic) generated in two independent folders."""
    with open(REPO / "tests" / "params-tiny.yaml") as fh:
        p = yaml.safe_load(fh)
    p["data"]["synthetic"]["size"] = 64
    dirs = []
    for name in ("a", "b"):
        d = tmp_path_factory.mktemp(name)
        res = _synthesize(d, p)
        assert res.returncode == 0, res.stderr
        dirs.append(d)
    return p, dirs


def test_same_seed_gives_identical_annotations_and_frames(two_runs):
    p, (a, b) = two_runs
    ann = Path(p["data"]["annotations"])
    assert (a / ann).read_bytes() == (b / ann).read_bytes()
    videos = sorted((a / p["data"]["videos"]).iterdir())
    assert [v.name for v in videos] == sorted(v.name for v in (b / p["data"]["videos"]).iterdir())
    for v in videos[:3]:
        n = len(decord.VideoReader(str(v)))
        idx = [0, n // 2, n - 1]
        assert np.array_equal(_decode(v, idx), _decode(b / p["data"]["videos"] / v.name, idx))
        assert v.read_bytes() == (b / p["data"]["videos"] / v.name).read_bytes()


def test_render_and_encode_are_byte_identical_across_processes_orders_and_load(repo):
    """Fresh processes, each in its own shuffled order, three at a time beside a busy loop:
    every render and every encode of every tiny video must give the same bytes. With
    x264's own kernels on an AVX-512 CPU about 1 encode in 300 differed (bench/README.md)."""
    run = subprocess.run(
        [
            sys.executable,
            str(repo / "bench" / "synth_stress.py"),
            "--params",
            str(repo / "tests" / "params-tiny.yaml"),
            "--processes",
            "6",
            "--parallel",
            "3",
            "--reps",
            "15",
            "--burn",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["encodes"] == summary["renders"] == 6 * 15 * 12
    assert (summary["renders_differing"], summary["encodes_differing"]) == (0, 0), summary
    assert run.returncode == 0, run.stderr


def test_output_is_activitynet_and_nothing_else(two_runs):
    p, (a, _) = two_runs
    root = a / "data" / "synthetic"
    files = sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())
    ann = str(Path(p["data"]["annotations"]).relative_to("data/synthetic"))
    assert ann in files and all(
        f == ann or (f.startswith("videos/v_") and f.endswith(".mp4")) for f in files
    )
    assert not list((a / "data").glob(".*"))  # no temporaries left beside it
    doc = json.loads((a / p["data"]["annotations"]).read_text())
    assert len(files) == len(doc["database"]) + 1


def test_videos_decode_with_the_annotated_duration_and_size(two_runs):
    p, (a, _) = two_runs
    syn = p["data"]["synthetic"]
    doc = json.loads((a / p["data"]["annotations"]).read_text())
    for vid, e in doc["database"].items():
        vr = decord.VideoReader(str(a / p["data"]["videos"] / f"v_{vid}.mp4"))
        # the container's frame rate is the rational fps exactly: its float64 reading within
        # 1e-15; the duration within one frame of the annotated one (+1e-6 for its rounding)
        assert abs(vr.get_avg_fps() - syn["fps"]) < 1e-6
        assert abs(len(vr) / vr.get_avg_fps() - e["duration"]) <= 1 / syn["fps"] + 1e-6
        assert vr[0].shape == (syn["size"], syn["size"], 3)
        assert e["resolution"] == f"{syn['size']}x{syn['size']}"


def test_decoded_frames_match_the_renderer(two_runs):
    """What the pipeline reads back is the rendered frame, up to H.264 loss (checked on luma)."""
    p, (a, _) = two_runs
    specs = {s.vid: s for s in _specs(p)}
    vid = sorted(specs)[0]
    s = specs[vid]
    idx = np.arange(s.n_frames)
    decoded = _decode(a / p["data"]["videos"] / f"v_{vid}.mp4", idx).astype(np.float64)
    rendered = render.render_frames(s, idx).astype(np.float64)
    luma = np.array([0.299, 0.587, 0.114])
    err = (decoded - rendered) @ luma
    psnr = 10 * np.log10(255**2 / np.mean(err**2))
    assert psnr > 30, psnr


def test_different_seed_changes_annotations_and_frames(two_runs, tmp_path):
    p, (a, _) = two_runs
    q = json.loads(json.dumps(p))
    q["data"]["synthetic"]["seed"] += 1
    res = _synthesize(tmp_path, q)
    assert res.returncode == 0, res.stderr
    ann = Path(p["data"]["annotations"])
    doc_a, doc_c = (json.loads((d / ann).read_text()) for d in (a, tmp_path))
    assert doc_a != doc_c and set(doc_a["database"]).isdisjoint(doc_c["database"])
    va = sorted((a / p["data"]["videos"]).iterdir())[0]
    vc = sorted((tmp_path / p["data"]["videos"]).iterdir())[0]
    assert not np.array_equal(_decode(va, [0]), _decode(vc, [0]))


def test_real_source_writes_only_the_marker(tiny_workdir, tiny_params):
    real = tiny_workdir / "anet"
    (real / "videos").mkdir(parents=True)
    (real / "anet.json").write_text("{}")
    old = tiny_workdir / "data" / "synthetic" / "keep.txt"
    old.parent.mkdir(parents=True)
    old.write_text("untouched")
    p = dict(tiny_params)
    p["data"] = {
        **p["data"],
        "source": "activitynet",
        "annotations": "anet/anet.json",
        "videos": "anet/videos",
        "tune_subset": None,
    }
    res = _synthesize(tiny_workdir, p)
    assert res.returncode == 0, res.stderr
    marker = tiny_workdir / "data" / "synthetic" / "SOURCE.txt"
    assert "activitynet" in marker.read_text() and old.read_text() == "untouched"
    assert sorted(f.name for f in (tiny_workdir / "data" / "synthetic").iterdir()) == [
        "SOURCE.txt",
        "keep.txt",
    ]
    assert sorted(f.name for f in real.rglob("*")) == ["anet.json", "videos"]


def test_odd_frame_size_is_one_line_parameter_error(tiny_workdir, tiny_params):
    tiny_params["data"]["synthetic"]["size"] = 33
    res = _synthesize(tiny_workdir, tiny_params)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "data.synthetic.size" in res.stderr
    assert not (tiny_workdir / "data" / "synthetic").exists()


def _previous_dataset_then_a_long_run(workdir, params) -> tuple:
    """Synthesize the tiny set, then point params.yaml at a set long enough to interrupt;
    returns (annotations path, its bytes before, the data folder)."""
    res = _synthesize(workdir, params)
    assert res.returncode == 0, res.stderr
    ann = workdir / params["data"]["annotations"]
    before = ann.read_bytes()
    big = json.loads(json.dumps(params))
    big["data"]["synthetic"].update(seed=7, train_per_class=40, size=64)
    (workdir / "params.yaml").write_text(yaml.safe_dump(big))
    return ann, before, workdir / "data"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_keeps_the_previous_dataset(tiny_workdir, tiny_params, sig):
    """Ctrl-C or a scheduler's SIGTERM mid-run: exit 130, old data intact, no temporaries, no
    workers left."""
    ann, before, data = _previous_dataset_then_a_long_run(tiny_workdir, tiny_params)
    rc, workers, err = signal_when(
        tiny_workdir,
        ["dkp", "synthesize"],
        sig,
        lambda: bool(list(data.glob(".synthetic.*.tmp/videos/*.mp4"))),
        180,
    )
    assert workers, "finished before it could be interrupted, or no worker processes"
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert ann.read_bytes() == before
    assert not list((tiny_workdir / "data").glob(".synthetic.*"))
    deadline = time.time() + 10
    while [w for w in workers if _alive(w)] and time.time() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "worker processes outlived the stage"


def test_kill_9_takes_the_workers_with_the_stage(tiny_workdir, tiny_params):
    """kill -9 mid-run with the render/encode workers held stopped: the kernel ends them when the
    stage dies (stopped, they cannot end by themselves), so no video is written after the kill,
    and the previous dataset is intact."""
    ann, before, data = _previous_dataset_then_a_long_run(tiny_workdir, tiny_params)

    def written() -> set[str]:
        return {f.name for f in data.glob(".synthetic.*.tmp/videos/*.mp4")}

    at_kill: list[set[str]] = []
    rc, children, err = signal_when(
        tiny_workdir,
        ["dkp", "synthesize"],
        signal.SIGKILL,
        lambda: bool(written()),
        180,
        at_signal=lambda: at_kill.append(written()),
        resume_children=False,
    )
    assert rc == -signal.SIGKILL, f"dkp synthesize ended (rc {rc}) before it could be killed"
    assert children, "expected worker processes"
    assert outliving(children) == [], "worker processes outlived the killed stage"
    assert written() == at_kill[0]
    assert ann.read_bytes() == before


def test_camera_shots_redraw_the_scene_but_keep_the_class(repo):
    """Shots last shot_seconds x time_scale; a new shot changes the background, never the class
    shape or tile."""
    p = _default_params(repo)
    syn = p["data"]["synthetic"]
    lo, hi = (x * syn["time_scale"] for x in syn["shot_seconds"])
    specs = _specs(p)
    s = max(specs, key=lambda v: v.n_frames)
    starts = np.array(s.shot_starts)
    assert starts[0] == 0 and len(starts) >= 2 and np.all(np.diff(starts) > 0)
    # the last shot is cut by the video end
    lengths = np.diff(np.append(starts, s.n_frames))[:-1] / s.fps
    assert np.all((lengths >= lo - 1 / s.fps) & (lengths <= hi + 1 / s.fps))
    a, b = render.build_scene(s, 0), render.build_scene(s, 1)
    assert not np.allclose(a.background, b.background)
    assert a.shape == b.shape and np.array_equal(a.tile, b.tile)
    k = int(starts[1])  # frames either side of a cut come from different scenes
    assert np.array_equal(s.shot_of([k - 1, k]), [0, 1])
