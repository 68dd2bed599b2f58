"""`dkp frames` and `dkp data-report` on real videos decoded by decord, and AV1 videos (MP4 and
WebM) decoded by the PyAV fallback; the sampling functions. Damaged containers (corrupted MP4
sample tables, an MP4 without sync-sample table, an MKV with garbage cues) through dkp's probe
and extraction; on the tiny pipeline with every bad input (tests/conftest.py), a video broken
after ingest, and kill -9 during extraction, whose rerun must reproduce that run byte for byte."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures import media as M
from fixtures.bad_inputs import SHORT, dkp
from fixtures.interrupt import _alive, _hidden, _kill_9_when, _tree, outliving
from PIL import Image

from dkp import cli, framestore
from dkp.errors import DkpError
from dkp.frames import decode, kept_indices, output_shape, sample_times
from dkp.video import open_video
from dkp.video.pyav_reader import PyAVReader

AV1 = M.av1_encoder()
# id -> (seconds, width, height, codec); native 2 fps
VIDEOS = {
    "h264_wide": (12.3, 64, 48, "libx264"),
    "h264_w48": (9.0, 48, 32, "libx264"),  # a width decord returns with padded rows
    "mpeg4": (7.0, 64, 48, "mpeg4"),  # a different encoder (MPEG-4 Part 2)
    "tall": (5.0, 32, 48, "libx264"),
    "later_broken": (6.0, 64, 48, "libx264"),
    "av1_mp4": (6.5, 64, 48, AV1),  # decord has no AV1 decoder: PyAV
    "av1_webm": (5.0, 48, 32, AV1),
}


def _file(vid: str) -> str:
    return f"v_{vid}.webm" if vid.endswith("webm") else f"v_{vid}.mp4"


@pytest.fixture(scope="module")
def anet_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("anet_frames")
    db = []
    for k, (vid, (sec, w, h, codec)) in enumerate(sorted(VIDEOS.items())):
        M.write_video(root / "videos" / _file(vid), sec, width=w, height=h, codec=codec)
        db.append((vid, M.entry("training" if k % 2 else "validation", sec, [("Run", 0.0, sec)])))
    M.write_bad_files(root / "videos")  # v_zero.mp4, v_text.mp4: unreadable at ingest
    db += [
        ("zero", M.entry("training", 3.0, [("Run", 0.0, 1.0)])),
        ("text", M.entry("validation", 3.0, [("Jump", 0.0, 1.0)])),
    ]
    M.write_activitynet(root / "anet.json", ["Run", "Jump"], db)
    return root


@pytest.fixture
def workdir(anet_dir, tiny_params, tmp_path, monkeypatch):
    """A project folder whose params point at the fixture videos; `dkp data` already run."""

    def make(**frames):
        p = json.loads(json.dumps(tiny_params))
        # frames.fps alone: these videos test the rate's mechanics (the sweep's counts: below)
        p["frames"]["per_video_count"] = "fps"
        p["data"].update(
            source="activitynet",
            annotations=str(anet_dir / "anet.json"),
            tune_subset=None,
            videos=str(tmp_path / "videos"),
        )
        p["frames"].update(frames)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        return p

    # a private copy of the videos, so a test may break one
    subprocess.run(["cp", "-r", str(anet_dir / "videos"), str(tmp_path / "videos")], check=True)
    monkeypatch.chdir(tmp_path)
    p = make()
    assert cli.main(["data", "--params", "params.yaml"]) == 0
    return tmp_path, p, make


def _frames(args=()):
    return cli.main(["frames", "--params", "params.yaml", *args])


def _snapshot(root):
    """name -> bytes of every file under data/frames."""
    return {
        str(f.relative_to(root)): f.read_bytes()
        for f in sorted((root / "data" / "frames").rglob("*"))
        if f.is_file()
    }


# ---- pure functions -------------------------------------------------------------------------


def test_sample_times_bin_centres():
    # exact: (k + 0.5) / fps for fps 1 and 2 are binary fractions
    assert np.array_equal(sample_times(12.3, 1.0), np.arange(12) + 0.5)
    assert np.array_equal(sample_times(12.6, 1.0), np.arange(13) + 0.5)  # centre 12.5 is inside
    assert np.array_equal(sample_times(10.0, 2.0), (np.arange(20) + 0.5) / 2)
    assert np.array_equal(sample_times(0.2, 1.0), [0.5])  # never empty
    for length in (3.0, 7.7, 150.0):
        for fps in (0.5, 1.0, 4.0):
            assert abs(len(sample_times(length, fps)) - length * fps) <= 1  # whole bins only


def test_sweep_demand_keeps_every_kth_decoded_frame():
    need = (("adaptive", 12), ("fixed", 5.0, 8.0))
    # 6 s decoded at 30 fps: 1 fps gives 6 frames, the sweep asks 12 (adaptive) and
    # 8 x round(6 / 5) = 8: every 15th frame (180 // 12), centred in its stride
    pts = np.arange(180) / 30.0
    idx = kept_indices(pts, 6.0, 1.0, need)
    assert idx.tolist() == list(range(7, 180, 15)) and len(idx) == 12
    # 100 s at 2 fps: fixed asks 8 x 20 = 160 of 200 decoded frames: all of them (stride 1)
    pts = np.arange(200) / 2.0
    assert kept_indices(pts, 100.0, 1.0, need).tolist() == list(range(200))
    # the fps count rules when larger: 300 s at 30 fps, 2 fps asks 600 > 480: every 15th frame
    pts = np.arange(9000) / 30.0
    assert len(kept_indices(pts, 300.0, 2.0, need)) == 600
    # a video with fewer decoded frames than asked keeps them all
    assert kept_indices(np.arange(5) / 2.0, 2.5, 1.0, need).tolist() == list(range(5))
    # without a demand: the 1/fps bin centres, as ever
    assert kept_indices(np.arange(24) / 2.0, 12.0, 1.0).tolist() == list(range(1, 24, 2))


def test_output_shape():
    assert output_shape(48, 64, 32, None) == (32, 43, 32, 43)
    assert output_shape(64, 48, 32, 32) == (43, 32, 32, 32)
    assert output_shape(720, 1280, 256, 224) == (256, 455, 224, 224)


# ---- the stage -------------------------------------------------------------------------------


def test_frames_count_timestamps_shape(workdir):
    root, p, _ = workdir
    assert _frames() == 0
    index = framestore.read_index(p).set_index("id")
    assert sorted(index.index) == sorted(VIDEOS)  # only videos ok at ingest are extracted
    assert (index["status"] == "ok").all()
    for vid, (sec, _w, _h, _codec) in VIDEOS.items():
        frames, times = framestore.load(p, vid)
        assert (
            isinstance(frames, np.memmap) and frames.dtype == np.uint8 and times.dtype == np.float64
        )
        assert abs(len(frames) - sec * p["frames"]["fps"]) <= 1, vid  # whole bins only
        assert frames.shape == (index.loc[vid, "n_frames"], 32, 32, 3)
        # 2 fps source: exact centres
        assert times.tolist() == [k + 0.5 for k in range(len(frames))]
        # the frame kept for centre k + 0.5 s is source frame 2k + 1
        assert [M.decode_index(f) for f in frames] == [2 * k + 1 for k in range(len(frames))], vid
        assert (
            root / "data" / "frames" / f"shard-{zlib.crc32(vid.encode()) % 2}" / f"{vid}.npy"
        ).exists()


def test_short_side_without_crop_and_other_fps(workdir):
    root, p, make = workdir
    p = make(size=16, crop=None, fps=0.5, workers=1)
    assert _frames() == 0
    for vid, (sec, w, h, _) in VIDEOS.items():
        frames, times = framestore.load(p, vid)
        short, long_ = (16, round(max(w, h) * 16 / min(w, h)))
        assert frames.shape[1:3] == ((short, long_) if h <= w else (long_, short)), vid
        assert abs(len(frames) - sec * 0.5) <= 1  # whole bins only
        # float64 products of integer timestamps and the stream's time base: 1-ulp level,
        # allclose's rtol 1e-5 far above
        assert np.allclose(times, (np.arange(len(frames)) + 0.5) * 2.0)
        # flat frames stay flat: a bound on the codec's noise in uint8 levels, not on rounding
        assert frames.reshape(len(frames), -1, 3).std(axis=1).max() < 4
        # t = 2k+1 s
        assert [M.decode_index(f) for f in frames] == [4 * k + 2 for k in range(len(frames))]


def test_unreadable_at_extraction_is_recorded_and_the_rest_continues(workdir):
    root, p, _ = workdir
    (root / "videos" / "v_later_broken.mp4").write_bytes(b"\0" * 1000)  # broken after ingest
    (root / "videos" / "v_tall.mp4").unlink()  # deleted after ingest
    assert _frames() == 0
    index = framestore.read_index(p).set_index("id")
    assert index.loc["later_broken", "status"] == "unreadable"
    assert index.loc["later_broken", "reason"].startswith("cannot open")
    assert index.loc["tall", "reason"] == "cannot open: No such file or directory"
    index = index.drop("tall")
    assert index.loc["later_broken", "n_frames"] == 0
    assert (index.drop("later_broken")["status"] == "ok").all()
    with pytest.raises(DkpError, match="no extracted frames"):
        framestore.load(p, "later_broken")
    usable = framestore.available(p)
    assert "later_broken" not in set(usable["id"]) and len(usable) == len(VIDEOS) - 2


def test_shard_option(workdir, capsys):
    root, p, _ = workdir
    assert _frames(["--shard", "1/2"]) == 0
    assert (root / "data/frames/shard-1/index.csv").exists()
    assert not (root / "data/frames/shard-0").exists()
    with pytest.raises(DkpError, match="run dkp frames first"):
        framestore.read_index(p)
    capsys.readouterr()
    assert _frames(["--shard", "0/3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dkp frames: error: --shard 0/3: N must equal frames.shards (2)"]
    assert _frames(["--shard", "0/2"]) == 0
    whole = _snapshot(root)
    assert len(framestore.read_index(p)) == len(VIDEOS)
    # the two shards run separately give the same files as one run over all shards
    subprocess.run(["rm", "-r", str(root / "data" / "frames")], check=True)
    assert _frames() == 0
    assert _snapshot(root) == whole


def test_fewer_shards_remove_the_old_ones(workdir):
    root, p, make = workdir
    p = make(shards=3)
    assert _frames() == 0
    assert (root / "data/frames/shard-2/index.csv").exists()
    p = make(shards=2)
    assert _frames() == 0
    assert sorted(d.name for d in (root / "data/frames").iterdir()) == ["shard-0", "shard-1"]
    assert len(framestore.read_index(p)) == len(VIDEOS)


def test_interrupted_run_resumes(workdir):
    root, p, _ = workdir
    assert _frames() == 0
    done = _snapshot(root)
    shard = root / "data" / "frames" / f"shard-{zlib.crc32(b'mpeg4') % 2}"
    # what a killed run leaves: a stale temporary, no index, one video's frames not yet renamed
    (shard / ".mpeg4.npy.abc123.tmp.npy").write_bytes(b"partial")
    (shard / "index.csv").unlink()
    (shard / "mpeg4.npy").unlink()
    kept = next(f for f in shard.glob("*.npy") if not f.name.startswith("mpeg4"))
    os.utime(kept, (1, 1))  # a reused file is left untouched
    assert _frames() == 0
    assert kept.stat().st_mtime == 1
    assert not list(shard.glob(".*tmp*"))
    os.utime(kept, None)
    assert _snapshot(root) == done


def test_same_input_byte_identical(workdir):
    root, p, _ = workdir
    assert _frames() == 0
    first = _snapshot(root)
    subprocess.run(["rm", "-r", str(root / "data" / "frames")], check=True)
    assert _frames() == 0
    assert _snapshot(root) == first
    assert any(k.endswith(".npy") for k in first)


def test_changed_settings_are_not_reused(workdir):
    root, p, make = workdir
    assert _frames() == 0
    p = make(size=16, crop=16)
    assert _frames() == 0
    frames, _ = framestore.load(p, "mpeg4")
    assert frames.shape[1:] == (16, 16, 3)


def test_jpeg_store_reads_like_the_npy_store(workdir):
    """frames.format jpeg: the same videos, timestamps and shapes as the npy store; frames within
    JPEG's error of the raw ones (each still decodes to its source frame); every read the npy
    memory map offers (a frame, a slice, an index list, the whole) gives the same arrays; a rerun
    reuses every video byte for byte, and switching the format back re-extracts."""
    root, p, make = workdir
    assert _frames() == 0
    raw = {vid: [np.array(a) for a in framestore.load(p, vid)] for vid in VIDEOS}
    p = make(format="jpeg", jpeg_quality=90)
    assert _frames() == 0
    jpeg_files = _snapshot(root)
    assert not any(k.endswith(f"{v}.npy") for k in jpeg_files for v in VIDEOS)
    assert json.loads((root / "data/frames/shard-0/settings.json").read_text())["format"] == "jpeg"
    index = framestore.read_index(p).set_index("id")
    for vid, (ref, ref_times) in raw.items():
        frames, times = framestore.load(p, vid)
        assert isinstance(frames, framestore.JpegFrames) and frames.shape == ref.shape
        assert index.loc[vid, "n_frames"] == len(ref) and times.tolist() == ref_times.tolist()
        whole = np.asarray(frames)
        assert whole.dtype == np.uint8 and whole.shape == ref.shape
        assert np.abs(whole.astype(int) - ref).mean() < 3, vid
        assert [M.decode_index(f) for f in whole] == [M.decode_index(f) for f in ref], vid
        assert np.array_equal(frames[-1], whole[-1]) and np.array_equal(frames[1:3], whole[1:3])
        assert np.array_equal(frames[[2, 0]], whole[[2, 0]])
        assert frames[5:5].shape == (0, *ref.shape[1:])
    assert _frames() == 0
    assert _snapshot(root) == jpeg_files  # every video reused
    p = make(format="npy")
    assert _frames() == 0
    assert all(np.array_equal(framestore.load(p, v)[0], raw[v][0]) for v in VIDEOS)
    assert not list((root / "data/frames").glob("shard-*/*.jpeg"))


def test_data_report(workdir):
    root, p, _ = workdir
    (root / "videos" / "v_later_broken.mp4").write_bytes(b"")
    assert _frames() == 0
    assert cli.main(["data-report", "--params", "params.yaml"]) == 0
    report_path = root / "results" / "data_report.json"
    report = json.loads(report_path.read_text())
    first = report_path.read_bytes()
    subsets = report["subsets"]
    assert set(subsets) == {"training", "validation"}
    total = {k: sum(s[k] for s in subsets.values()) for k in subsets["training"]}
    assert total["videos"] == len(VIDEOS) + 2
    assert total["ok"] == len(VIDEOS) - 1
    assert (
        total["unreadable_ingest"] == 2
        and total["unreadable_extraction"] == 1
        and total["missing"] == 0
    )
    index = framestore.read_index(p)
    assert total["frames_extracted"] == int(index["n_frames"].sum()) > 0
    skipped = {(s["id"], s["stage"]) for s in report["skipped"]}
    assert skipped == {("zero", "ingest"), ("text", "ingest"), ("later_broken", "frames")}
    assert report["classes"] == 2
    assert cli.main(["data-report", "--params", "params.yaml"]) == 0
    assert report_path.read_bytes() == first


# ---- the PyAV fallback -----------------------------------------------------------------------


def _reference(path, fps: float, size: int, crop: int) -> tuple[np.ndarray, list[float]]:
    """An independent decode: every frame with PyAV, per 1/fps bin the frame nearest its centre
    (ties: the earlier), short side to `size` with Pillow bilinear, centre crop."""
    with av.open(str(path)) as container:
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    t = np.array([time for time, _ in decoded])
    end = t[-1] + (t[-1] - t[-2])  # constant frame rate: the last frame lasts as long as the others
    centres = (np.arange(math.ceil(end * fps - 0.5)) + 0.5) / fps
    out = []
    for c in centres:
        # argmin: the first of a tie
        img = Image.fromarray(decoded[int(np.argmin(np.abs(t - c)))][1])
        w, h = img.size
        short = min(w, h)
        img = img.resize(
            (max(size, round(w * size / short)), max(size, round(h * size / short))),
            Image.Resampling.BILINEAR,
        )
        left, top = (img.size[0] - crop) // 2, (img.size[1] - crop) // 2
        out.append(np.asarray(img.crop((left, top, left + crop, top + crop))))
    return np.stack(out), [float(t[int(np.argmin(np.abs(t - c)))]) for c in centres]


def test_av1_frames_equal_an_independent_pyav_decode(workdir):
    root, p, _ = workdir
    assert _frames() == 0
    f = p["frames"]
    for vid in ("av1_mp4", "av1_webm"):
        frames, times = framestore.load(p, vid)
        ref, ref_times = _reference(root / "videos" / _file(vid), f["fps"], f["size"], f["crop"])
        assert times.tolist() == ref_times, vid
        np.testing.assert_array_equal(frames, ref)  # pixel-equal


def test_index_records_the_decoder_also_when_reused(workdir):
    root, p, _ = workdir
    expected = {vid: "pyav" if codec == AV1 else "decord" for vid, (*_, codec) in VIDEOS.items()}
    assert _frames() == 0
    assert framestore.read_index(p).set_index("id")["decoder"].to_dict() == expected
    assert _frames() == 0  # every video reused: the decoder comes from the previous index
    assert framestore.read_index(p).set_index("id")["decoder"].to_dict() == expected
    for index in (root / "data" / "frames").glob("shard-*/index.csv"):
        index.unlink()  # an interrupted run: the files are reused, each decoder chosen again
    before = _snapshot(root)
    assert _frames() == 0
    assert framestore.read_index(p).set_index("id")["decoder"].to_dict() == expected
    assert {k: v for k, v in _snapshot(root).items() if k.endswith(".npy")} == {
        k: v for k, v in before.items() if k.endswith(".npy")
    }


@pytest.mark.parametrize("fps", [1.0, 3.0])  # 3 fps: above the native 2 fps, frames repeat
def test_pyav_path_equals_the_decord_path(anet_dir, fps):
    """Forced onto videos decord reads, the PyAV reader gives the same timestamps and frames: the
    fallback shares the sampling and resizing, and decodes to the same pixels."""
    for vid, (*_, codec) in VIDEOS.items():
        if codec == AV1:
            continue
        path = str(anet_dir / "videos" / _file(vid))
        decoder, reader = open_video(path)
        assert decoder == "decord"
        frames, times = decode(path, "decord", reader, fps, 32, 32)
        got_frames, got_times = decode(path, "pyav", PyAVReader(path), fps, 32, 32)
        np.testing.assert_array_equal(got_times, times)
        np.testing.assert_array_equal(got_frames, frames, err_msg=vid)


def test_undecodable_av1_is_unreadable_with_the_cause(workdir):
    root, p, _ = workdir
    # frame data garbled after ingest
    M.write_scrambled(root / "videos" / _file("av1_mp4"), 6.5, codec=AV1)
    assert _frames() == 0
    row = framestore.read_index(p).set_index("id").loc["av1_mp4"]
    assert (row["status"], row["n_frames"], row["decoder"]) == ("unreadable", 0, "")
    assert row["reason"] == (
        "unsupported codec av1 in decord; PyAV failed: "
        "cannot decode: Invalid data found when processing input"
    )


# ---- damaged containers --------------------------------------------------------------------------


def test_broken_index_mp4s_open_or_fail_as_documented(tmp_path):
    """What decord makes of each corrupted sample table, through dkp's own probe and extraction."""
    from dkp.errors import VideoError
    from dkp.frames import extract
    from dkp.ingest.videos import probe

    for table in M.BROKEN_TABLES:
        M.write_broken_index(tmp_path / f"{table}.mp4", table)
    assert probe(str(tmp_path / "stco.mp4")) == (
        "unreadable",
        "cannot open: Cannot create buffer source",
    )
    assert probe(str(tmp_path / "stts.mp4")) == ("unreadable", "invalid frame rate nan")
    assert probe(str(tmp_path / "stss.mp4")) == (
        "ok",
        "",
    )  # the container opens: length and frame rate
    with pytest.raises(
        VideoError, match=r"^decode failed after 0 of 10 frames: Error getting frame at: 1 "
    ):
        extract(str(tmp_path / "stss.mp4"), 1.0, 32, 32)


def test_mp4_without_sync_sample_table_gives_the_source_frames(tmp_path):
    """With no sync-sample table every frame counts as a keyframe and decord, seeking by it, returns
    wrong pictures without an error; the table's absence sends the file to PyAV, which decodes from
    the start: the frames and times of the intact file."""
    from dkp.frames import extract_video
    from dkp.ingest.videos import probe

    path = M.write_broken_index(tmp_path / "no-stss.mp4", "no-stss")
    intact = M.write_video(tmp_path / "intact.mp4", 10.0, faststart=True)
    assert probe(str(path)) == ("ok", "")
    frames, times, decoder = extract_video(str(path), 1.0, 32, 32)
    ref_frames, ref_times, ref_decoder = extract_video(str(intact), 1.0, 32, 32)
    assert (decoder, ref_decoder) == ("pyav", "decord")
    assert [M.decode_index(f) for f in frames] == [2 * k + 1 for k in range(10)]
    np.testing.assert_array_equal(times, ref_times)
    np.testing.assert_array_equal(frames, ref_frames)


def test_mkv_with_damaged_cues_extracts_the_same_frames(tmp_path):
    """A Matroska file whose seek index is garbage: decord reads it without the index, frame for
    frame."""
    from dkp.frames import extract
    from dkp.ingest.videos import probe

    damaged = M.write_damaged_cues(tmp_path / "damaged.mkv", 30.0)
    intact = M.write_video(tmp_path / "intact.mkv", 30.0)
    assert damaged.read_bytes() != intact.read_bytes()
    assert probe(str(damaged)) == ("ok", "")
    frames, times = extract(str(damaged), 1.0, 32, 32)
    ref_frames, ref_times = extract(str(intact), 1.0, 32, 32)
    np.testing.assert_array_equal(frames, ref_frames)
    np.testing.assert_array_equal(times, ref_times)
    assert [M.decode_index(f) for f in frames] == [2 * k + 1 for k in range(30)]


# ---- the tiny pipeline with every bad input ------------------------------------------------------


@pytest.fixture
def pipeline(bad_inputs_pipeline):
    """The session's one run of the tiny pipeline with every bad input (tests/conftest.py)."""
    return bad_inputs_pipeline


@pytest.mark.slow
def test_broken_time_index_after_ingest_is_unreadable_at_extraction(pipeline, tmp_path):
    """A file replaced after ingest by one whose sample durations are all 0 (timestamps and frame
    rate NaN) is recorded unreadable with the reason ingest would give; the stage finishes."""
    root, p = pipeline
    work = tmp_path / "w"
    work.mkdir()
    shutil.copytree(root / "videos", work / "videos")
    q = json.loads(json.dumps(p))
    q["data"]["videos"] = str(work / "videos")
    (work / "params.yaml").write_text(yaml.safe_dump(q, sort_keys=False))
    assert dkp(work, "data").returncode == 0
    M.write_broken_index(work / "videos" / f"v_{SHORT}.mp4", "stts")
    res = dkp(work, "frames")
    assert res.returncode == 0, res.stderr
    shards = sorted(work.glob("data/frames/shard-*/index.csv"))
    index = pd.concat([pd.read_csv(f, keep_default_na=False) for f in shards])
    row = index.set_index("id").loc[SHORT]
    assert (row["status"], row["reason"], row["n_frames"]) == (
        "unreadable",
        "invalid frame rate nan",
        0,
    )
    assert (index["status"] == "ok").sum() == len(index) - 2  # bad_stss and this one


def _extraction_to_kill(pipeline, tmp_path) -> tuple[Path, Path]:
    """A work folder with the pipeline's params and `dkp data` run, and its frame store."""
    root, _ = pipeline
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(root / "params.yaml", work / "params.yaml")
    assert dkp(work, "data").returncode == 0
    return work, work / "data" / "frames"


def _videos_done(frames: Path) -> set[str]:
    return {f.name for f in frames.glob("shard-*/*.t.npy")}


def _some_video_done(frames: Path) -> bool:
    return any(not f.name.startswith(".") for f in frames.glob("shard-*/*.npy"))


@pytest.mark.slow
def test_kill_9_during_extraction_then_rerun_is_byte_identical(pipeline, tmp_path):
    root, p = pipeline
    work, frames = _extraction_to_kill(pipeline, tmp_path)
    at_kill: list[set[str]] = []
    rc, workers = _kill_9_when(
        work,
        "frames",
        lambda: _some_video_done(frames),
        at_kill=lambda: at_kill.append(_videos_done(frames)),
    )
    assert rc == -signal.SIGKILL, f"dkp frames ended (rc {rc}) before it could be killed"
    assert workers, "expected decoding worker processes"
    deadline = time.monotonic() + 60
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "worker processes outlived the killed stage"
    assert not list(frames.glob("shard-*/index.csv")), "a shard was marked complete"
    # the stage hands out one video per worker at a time (dkp.workers), so after the kill at most
    # those can still be finished, not the videos it had yet to hand out
    assert len(_videos_done(frames)) <= len(at_kill[0]) + p["frames"]["workers"], (
        "orphans went on with queued videos"
    )
    reference = _tree(root / "data" / "frames")
    done = {k: v for k, v in _tree(frames).items() if not Path(k).name.startswith(".")}
    for name, data in done.items():  # every file under its final name is complete
        if name.endswith(".npy"):
            assert data == reference[name], name
    res = dkp(work, "frames")
    assert res.returncode == 0, res.stderr
    assert not _hidden(frames), "temporaries left behind"
    assert _tree(frames) == reference


@pytest.mark.slow
def test_workers_of_a_killed_extraction_die_with_it(pipeline, tmp_path):
    """kill -9 of `dkp frames` with its decoding workers held stopped: the kernel ends them when
    the stage dies (they cannot end by themselves while stopped), so no video is finished after
    the kill."""
    work, frames = _extraction_to_kill(pipeline, tmp_path)
    at_kill: list[set[str]] = []
    rc, children = _kill_9_when(
        work,
        "frames",
        lambda: _some_video_done(frames),
        at_kill=lambda: at_kill.append(_videos_done(frames)),
        resume_children=False,
    )
    assert rc == -signal.SIGKILL, f"dkp frames ended (rc {rc}) before it could be killed"
    assert children, "expected decoding worker processes"
    assert outliving(children) == [], "worker processes outlived the killed stage"
    assert _videos_done(frames) == at_kill[0]
