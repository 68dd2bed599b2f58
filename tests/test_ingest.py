"""`dkp data` on real files: an ActivityNet v1.3 JSON and a Mini-Kinetics CSV with real videos
(written with PyAV), missing and broken ones among them."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from fixtures import media as M

from dkp import cli, framestore, layout, video
from dkp.ingest import videos

LEAVES = ["Run", "Jump", "Swim", "Archery"]  # taxonomy file order; sorted order differs


def _anet_database():
    e = M.entry
    return [
        ("ok_a", e("training", 12.3, [("Run", 1.0, 5.5)])),
        ("ok_b", e("training", 7.0, [("Jump", 0.0, 3.0)])),
        ("ok_mkv", e("training", 5.0, [("Archery", 0.5, 4.0)])),
        ("ok_webm", e("training", 4.0, [("Run", 0.0, 4.0)])),
        ("noprefix", e("validation", 6.0, [("Jump", 1.0, 2.0)])),
        (
            "multi",
            e("validation", 9.0, [("Swim", 0.0, 2.0), ("Run", 3.0, 4.0), ("Swim", 5.0, 8.0)]),
        ),
        ("gone", e("validation", 9.0, [("Swim", 0.0, 2.0)])),
        ("trunc", e("training", 10.0, [("Jump", 0.0, 2.0)])),
        ("zero", e("training", 3.0, [("Run", 0.0, 2.0)])),
        ("text", e("validation", 3.0, [("Run", 0.0, 2.0)])),
        ("audio", e("training", 2.0, [("Run", 0.0, 2.0)])),
        ("alien", e("training", 9.0, [("Fly a kite", 0.0, 2.0)])),
        ("noann", e("validation", 9.0, [])),
        (
            "test_1",
            {
                "subset": "testing",
                "duration": 5.0,
                "resolution": "48x32",
                "url": "",
                "annotations": [],
            },
        ),
        ("ok_a", e("validation", 12.3, [("Swim", 1.0, 5.0)])),  # duplicate id: the first is kept
        ("val_2", e("validation", 8.0, [("Archery", 2.0, 6.0)])),
    ]


@pytest.fixture(scope="module")
def anet_dir(tmp_path_factory):
    """An ActivityNet-shaped dataset: annotation JSON + videos, some missing or broken."""
    root = tmp_path_factory.mktemp("anet")
    v = root / "videos"
    M.write_video(v / "v_ok_a.mp4", 12.3)
    M.write_video(v / "v_ok_b.mp4", 7.0, codec="mpeg4")
    M.write_video(v / "v_ok_mkv.mkv", 5.0)
    M.write_video(v / "v_ok_webm.webm", 4.0, codec="libvpx-vp9")
    M.write_video(v / "noprefix.mp4", 6.0)  # mirrors without the v_ prefix
    M.write_video(v / "v_multi.mp4", 9.0)
    M.write_video(v / "sub" / "v_val_2.mp4", 8.0)  # per-split subfolders are searched too
    M.write_truncated(v / "v_trunc.mp4")
    M.write_audio_only(v / "v_audio.mp4")
    bad = M.write_bad_files(v)
    assert bad["zero"].stat().st_size == 0
    M.write_video(v / "v_alien.mp4", 9.0)
    M.write_activitynet(root / "activity_net.v1-3.min.json", LEAVES, _anet_database())
    return root


def _params(tiny_params, workdir, **data):
    p = json.loads(json.dumps(tiny_params))
    p["data"]["tune_subset"] = (
        None  # the fixtures hold training and validation only, as real ActivityNet
    )
    p["data"].update(data)
    (workdir / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return p


def _run(workdir, monkeypatch, stage="data"):
    monkeypatch.chdir(workdir)
    return cli.main([stage, "--params", "params.yaml"])


@pytest.fixture
def anet_run(anet_dir, tiny_params, tmp_path, monkeypatch):
    p = _params(
        tiny_params,
        tmp_path,
        source="activitynet",
        annotations=str(anet_dir / "activity_net.v1-3.min.json"),
        videos=str(anet_dir / "videos"),
    )
    assert _run(tmp_path, monkeypatch) == 0
    return p, framestore.load_manifest(p).set_index("id"), framestore.load_skipped(p)


def test_manifest_columns_and_statuses(anet_run):
    p, m, _ = anet_run
    assert list(m.reset_index().columns) == framestore.MANIFEST_COLUMNS
    status = m["status"].to_dict()
    assert {k for k, s in status.items() if s == "ok"} == {
        "ok_a",
        "ok_b",
        "ok_mkv",
        "ok_webm",
        "noprefix",
        "multi",
        "val_2",
    }
    assert status["gone"] == "missing" and m.loc["gone", "path"] == ""
    for vid in ("trunc", "zero", "text", "audio"):
        assert status[vid] == "unreadable", vid
    assert m.loc["zero", "reason"] == "empty file (0 bytes)"
    assert m.loc["audio", "reason"] == "no video stream"
    assert m.loc["text", "reason"].startswith("cannot open")
    # no paths, no clock
    assert m.loc["trunc", "reason"] != "" and "/" not in m.loc["trunc", "reason"]
    assert m.loc["noprefix", "path"].endswith("videos/noprefix.mp4")
    assert m.loc["val_2", "path"].endswith("videos/sub/v_val_2.mp4")
    assert m.loc["ok_mkv", "path"].endswith(".mkv") and m.loc["ok_webm", "path"].endswith(".webm")


def test_labels_segments_and_multi_label(anet_run):
    p, m, _ = anet_run
    classes = framestore.load_classes(p)
    assert classes == LEAVES  # taxonomy leaves in file order, internal nodes left out
    assert m.loc["multi", "label"] == "Swim"  # the first annotation's label
    assert m.loc["multi", "segments"] == [[0.0, 2.0], [5.0, 8.0]]  # only that label's segments
    assert m.loc["multi", "n_labels"] == 2
    assert (m["n_labels"] > 1).sum() == 1
    assert m.loc["ok_a", "duration"] == 12.3 and m.loc["ok_a", "segments"] == [[1.0, 5.5]]
    assert all(classes[i] == lab for i, lab in zip(m["label_index"], m["label"]))
    assert m.loc["ok_a", "subset"] == "training"  # the first of the duplicate entries


def test_skips_are_recorded_with_reasons(anet_run):
    _, m, skipped = anet_run
    reasons = {(r.id, r.reason): r.detail for r in skipped.itertuples()}
    assert reasons[("alien", "label not in taxonomy")] == "Fly a kite"
    assert ("ok_a", "duplicate id") in reasons
    assert reasons[("test_1", "subset not used")] == "testing (no labels)"
    assert ("noann", "no annotations") in reasons
    assert len(skipped) == 4
    assert not set(skipped["id"]) - {"alien", "ok_a", "test_1", "noann"}
    assert "alien" not in m.index and "test_1" not in m.index


def test_rows_sorted_and_rerun_byte_identical(anet_run, monkeypatch):
    p, m, _ = anet_run
    subsets = list(m["subset"])
    assert subsets == sorted(subsets, key=["training", "validation"].index)
    for s in ("training", "validation"):
        ids = list(m.index[m["subset"] == s])
        assert ids == sorted(ids)
    first = {
        f: (layout.DATA / f).read_bytes() for f in ("manifest.csv", "classes.txt", "skipped.csv")
    }
    assert cli.main(["data", "--params", "params.yaml"]) == 0
    assert {f: (layout.DATA / f).read_bytes() for f in first} == first


def test_parallel_probe_gives_the_same_manifest(anet_run, monkeypatch):
    """Probing in frames.workers processes (used from videos.POOL_MIN files on) changes nothing."""
    p, _, _ = anet_run
    assert p["frames"]["workers"] == 2
    serial = layout.MANIFEST.read_bytes()
    monkeypatch.setattr(videos, "POOL_MIN", 1)
    assert cli.main(["data", "--params", "params.yaml"]) == 0
    assert layout.MANIFEST.read_bytes() == serial


def test_class_order_sorted_and_cap(anet_dir, tiny_params, tmp_path, monkeypatch):
    p = _params(
        tiny_params,
        tmp_path,
        source="activitynet",
        annotations=str(anet_dir / "activity_net.v1-3.min.json"),
        videos=str(anet_dir / "videos"),
        class_order="sorted",
        max_videos_per_subset=2,
    )
    assert _run(tmp_path, monkeypatch) == 0
    assert framestore.load_classes(p) == sorted(LEAVES)
    m = framestore.load_manifest(p)
    assert list(m["id"]) == ["audio", "ok_a", "gone", "multi"]  # first 2 sorted ids per subset
    capped = framestore.load_skipped(p).query("reason == 'max_videos_per_subset cap'")
    assert len(capped) == (7 - 2) + (5 - 2)  # 7 training and 5 validation entries usable


@pytest.mark.parametrize(
    "subsets",
    [{"val_subset": "training"}, {"tune_subset": "validation"}, {"tune_subset": "training"}],
)
def test_subsets_that_coincide_are_one_line_error(anet_dir, tiny_params, tmp_path, subsets):
    _params(
        tiny_params,
        tmp_path,
        source="activitynet",
        annotations=str(anet_dir / "activity_net.v1-3.min.json"),
        videos=str(anet_dir / "videos"),
        **subsets,
    )
    r = subprocess.run(["dkp", "data"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "must differ" in r.stderr
    assert not (tmp_path / "data").exists()


def test_empty_subset_is_one_line_error(anet_dir, tiny_params, tmp_path):
    _params(
        tiny_params,
        tmp_path,
        source="activitynet",
        annotations=str(anet_dir / "activity_net.v1-3.min.json"),
        videos=str(anet_dir / "videos"),
        val_subset="val",
    )
    r = subprocess.run(["dkp", "data"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "no usable video in subset 'val'" in r.stderr
    assert not (tmp_path / "data").exists()


def test_bad_annotation_file_is_one_line_error(tiny_params, tmp_path):
    bad = tmp_path / "anet.json"
    bad.write_text('{"database": {"a": ')
    (tmp_path / "videos").mkdir()
    _params(tiny_params, tmp_path, source="activitynet", annotations="anet.json", videos="videos")
    r = subprocess.run(["dkp", "data"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "not a valid ActivityNet JSON file at line 1" in r.stderr
    assert not (tmp_path / "data").exists()


KINETICS_CSV = """label,youtube_id,time_start,time_end,split
abseiling,aaa,0,10,train
air drumming,bbb,14,24,train
"abseiling",ccc,3,8,val
archery,ddd,0,10,train
air_drumming,eee,5,12,val
abseiling,fff,0,10,test
abseiling,aaa,0,10,train
abseiling,ggg,7,17,val
abseiling,hhh,3
"""


def test_kinetics_csv_with_class_list(tiny_params, tmp_path, monkeypatch):
    clips = tmp_path / "clips"
    M.write_video(clips / "train" / "aaa_000000_000010.mp4", 10.0)
    M.write_video(clips / "train" / "bbb_000014_000024.mp4", 10.0)
    M.write_video(clips / "val" / "ccc_000003_000008.mp4", 5.0)
    M.write_video(clips / "val" / "eee_000005_000012.mp4", 7.0)
    (tmp_path / "kinetics.csv").write_text(KINETICS_CSV)
    (tmp_path / "classes.txt").write_text("# Mini-Kinetics subset\nair drumming\nabseiling\n\n")
    p = _params(
        tiny_params,
        tmp_path,
        source="kinetics",
        annotations="kinetics.csv",
        videos="clips",
        class_list="classes.txt",
        train_subset="train",
        val_subset="val",
    )
    assert _run(tmp_path, monkeypatch) == 0
    assert framestore.load_classes(p) == ["abseiling", "air drumming"]
    m = framestore.load_manifest(p).set_index("id")
    assert list(m.index) == [
        "aaa_000000_000010",
        "bbb_000014_000024",
        "ccc_000003_000008",
        "eee_000005_000012",
        "ggg_000007_000017",
    ]
    assert m.loc["bbb_000014_000024", "duration"] == 10.0
    assert m.loc["bbb_000014_000024", "segments"] == [[0.0, 10.0]]
    assert m.loc["eee_000005_000012", "label"] == "air drumming"  # underscore spelling matched
    assert m.loc["ggg_000007_000017", "status"] == "missing"
    assert set(m.loc[m["status"] == "ok"].index) == set(m.index) - {"ggg_000007_000017"}
    assert m.loc["aaa_000000_000010", "path"].endswith("clips/train/aaa_000000_000010.mp4")
    skipped = {(r.id, r.reason) for r in framestore.load_skipped(p).itertuples()}
    assert skipped == {
        ("ddd_000000_000010", "label not in class list"),
        ("fff_000000_000010", "subset not used"),
        ("aaa_000000_000010", "duplicate id"),
        ("line10", "invalid entry"),
    }


def test_av1_and_fallback_videos(tiny_params, tmp_path, monkeypatch):
    """decord has no AV1 decoder: AV1 in MP4 and WebM are read with PyAV and ok, as is an MP4
    without a sync-sample table; a video no decoder reads is unreadable with the cause, not 'no
    video stream'."""
    v, av1 = tmp_path / "videos", M.av1_encoder()
    M.write_video(v / "v_av1_mp4.mp4", 8.0, width=64, height=48, codec=av1)
    M.write_video(v / "v_av1_webm.webm", 8.0, width=64, height=48, codec=av1)
    M.write_scrambled(v / "v_av1_bad.mp4", codec=av1)
    M.write_broken_index(v / "v_nostss.mp4", "no-stss")
    M.write_video(v / "v_h264.mp4", 4.0)
    M.write_audio_only(v / "v_audio.mp4")
    M.write_truncated(v / "v_cut.mp4", 8.0, codec=av1)  # the index (at the end) cut off
    ids = ["av1_mp4", "av1_webm", "av1_bad", "nostss", "h264", "audio", "cut"]
    M.write_activitynet(
        tmp_path / "anet.json",
        ["Run"],
        [
            (i, M.entry("training" if k % 2 else "validation", 8.0, [("Run", 0.0, 2.0)]))
            for k, i in enumerate(ids)
        ],
    )
    p = _params(
        tiny_params, tmp_path, source="activitynet", annotations="anet.json", videos="videos"
    )
    assert _run(tmp_path, monkeypatch) == 0
    m = framestore.load_manifest(p).set_index("id")
    assert {i for i in ids if m.loc[i, "status"] == "ok"} == {
        "av1_mp4",
        "av1_webm",
        "nostss",
        "h264",
    }
    assert m.loc["av1_bad", "reason"] == (
        "unsupported codec av1 in decord; PyAV failed: "
        "cannot decode: Invalid data found when processing input"
    )
    assert m.loc["audio", "reason"] == "no video stream"  # the one file that has none
    assert m.loc["cut", "reason"] == "cannot open: the container lists no audio or video stream"


def test_decoder_choice(tmp_path):
    """decord where it reads the file right; PyAV for AV1 and for an MP4 whose index has no
    sync-sample table. A fragmented MP4 keeps its keyframes in the fragments: decord. An MP4 of
    keyframes only needs no table either, but cannot be told from a stripped one: PyAV, only
    slower."""
    av1 = M.av1_encoder()
    files = {
        "decord": [
            M.write_video(tmp_path / "a.mp4", 4.0),
            M.write_video(tmp_path / "b.mp4", 4.0, faststart=True),
            M.write_video(tmp_path / "c.mkv", 4.0),
            M.write_video(tmp_path / "d.webm", 4.0, codec="libvpx-vp9"),
            M.write_video(tmp_path / "e.mp4", 4.0, fragmented=True),
            M.write_video(tmp_path / "f.mp4", 7.0, codec="mpeg4"),
        ],  # frame 8 is its first inter frame
        "pyav": [
            M.write_video(tmp_path / "g.mp4", 4.0, codec=av1),
            M.write_video(tmp_path / "h.webm", 4.0, codec=av1),
            M.write_broken_index(tmp_path / "i.mp4", "no-stss", 4.0),
            M.write_video(tmp_path / "j.mp4", 4.0, codec="mpeg4"),
        ],  # 8 keyframes (flat colours change)
    }
    for decoder, paths in files.items():
        for path in paths:
            assert video.open_video(str(path))[0] == decoder, path.name
            assert video.mp4_lacks_sync_table(str(path)) == (path.name in ("i.mp4", "j.mp4")), (
                path.name
            )
            assert videos.probe(str(path)) == ("ok", "")


@pytest.mark.slow
def test_synthetic_data_goes_through_the_activitynet_reader(tiny_workdir, monkeypatch):
    """dkp synthesize then dkp data on the tiny parameters: every generated video ingests ok."""
    monkeypatch.chdir(tiny_workdir)
    assert cli.main(["synthesize", "--params", "params.yaml"]) == 0
    assert cli.main(["data", "--params", "params.yaml"]) == 0
    p = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    m = framestore.load_manifest(p)
    syn = p["data"]["synthetic"]
    assert (m["status"] == "ok").all(), m[m["status"] != "ok"]
    counts = m["subset"].value_counts().to_dict()
    assert counts == {
        "training": syn["num_classes"] * syn["train_per_class"],
        "validation": syn["num_classes"] * syn["val_per_class"],
        "tuning": syn["num_classes"] * syn["tune_per_class"],
    }
    assert len(framestore.load_classes(p)) == syn["num_classes"]
    assert all(len(s) >= 1 for s in m["segments"])
