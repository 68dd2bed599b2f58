"""Reliability (issue #7): bad inputs, kill -9 mid-stage, disk hygiene.

Everything runs on real files, real decord and dkp's command line. The module's pipeline is the tiny
synthetic dataset read as ActivityNet, plus one video or annotation row of every bad kind (written
with PyAV by tests/fixtures/media.py) and one valid video shorter than the frames the sweep's
configurations ask for; it runs once, uninterrupted, through every stage from `dkp data` to
`dkp figures` (in one process, through dkp.cli.main), and is the reference the interrupted runs,
separate `dkp` processes killed with SIGKILL, must reproduce byte for byte.
Other reliability tests live beside the code they test: test_ingest.py (bad files at ingest,
an empty subset, a bad annotation file), test_params.py (invalid parameters), test_train.py
(kill -9 during training, bit-identical resume), test_frames.py (a video broken after ingest).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures import media as M
from test_params import _dkp, _set, _write

from dkp.atomic import atomic_dir, atomic_path, write_json
from dkp.predictions import read as read_predictions

# Bad videos and annotation rows added to the tiny synthetic dataset: id -> (subset, what ingest and
# extraction must make of it). Files are written by _write_bad_videos.
BAD_VIDEOS = {
    "bad_zero": ("training", "ingest", "empty file (0 bytes)"),
    "bad_trunc": (
        "training",
        "ingest",
        "cannot open: Invalid data found when processing input",
    ),  # moov cut off
    "bad_trunc_fs": (
        "training",
        "ingest",
        "cannot read packets: Invalid data found when processing input",
    ),
    "bad_audio": ("training", "ingest", "no video stream"),
    "bad_stco": ("training", "ingest", "cannot open: Cannot create buffer source"),
    "bad_gone": ("validation", "missing", "no file v_<id> or <id> with extension .mp4/.mkv/.webm"),
    "bad_text": ("validation", "ingest", "cannot open: "),
    "bad_stts": ("validation", "ingest", "invalid frame rate nan"),
    "bad_stss": (
        "validation",
        "frames",
        "decode failed after 0 of 10 frames: ",
    ),  # opens, cannot seek
}
BAD_ROWS = {  # annotation rows ingest drops: id -> (reason in data/skipped.csv, detail)
    "bad_alien": ("label not in taxonomy", "Fly a kite"),
    "bad_test": ("subset not used", "testing (no labels)"),
    "bad_noann": ("no annotations", ""),
}
SHORT = "short_3s"  # a valid 3 s validation video: 3 frames at 1 fps
SHORT_SECONDS = 3.0
STAGES = [
    "data",
    "frames",
    "data-report",
    "train-teacher",
    "train-student",
    "features",
    "sweep",
    "evaluate",
    "figures",
]


def dkp(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dkp", *args, "--params", "params.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(res: subprocess.CompletedProcess) -> bool:
    return res.returncode != 0 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def _write_bad_videos(folder: Path) -> None:
    bad = M.write_bad_files(folder)  # v_zero.mp4, v_text.mp4
    bad["zero"].rename(folder / "v_bad_zero.mp4")
    bad["text"].rename(folder / "v_bad_text.mp4")
    M.write_truncated(folder / "v_bad_trunc.mp4")
    M.write_truncated(folder / "v_bad_trunc_fs.mp4", faststart=True)
    M.write_audio_only(folder / "v_bad_audio.mp4")
    for table in M.BROKEN_TABLES:
        M.write_broken_index(folder / f"v_bad_{table}.mp4", table)
    M.write_video(folder / f"v_{SHORT}.mp4", SHORT_SECONDS)
    M.write_video(folder / "v_bad_alien.mp4", 4.0)  # a fine file whose label is not in the taxonomy


def _annotations(synthetic: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """Taxonomy leaves and database of the synthetic annotation file plus every bad row."""
    tax = synthetic["taxonomy"]
    parents = {n["parentId"] for n in tax}
    leaves = [n["nodeName"] for n in tax if n["nodeId"] not in parents]
    database = list(synthetic["database"].items())
    first_val = next((vid, e) for vid, e in database if e["subset"] == "validation")
    label = first_val[1]["annotations"][0]["label"]
    e = M.entry
    database += [
        (vid, e(subset, 10.0, [(label, 0.0, 5.0)])) for vid, (subset, _, _) in BAD_VIDEOS.items()
    ]
    database += [
        (SHORT, e("validation", SHORT_SECONDS, [(label, 0.5, 2.5)])),
        ("bad_alien", e("training", 4.0, [("Fly a kite", 0.0, 2.0)])),
        (
            "bad_test",
            {
                "subset": "testing",
                "duration": 5.0,
                "resolution": "48x32",
                "url": "",
                "annotations": [],
            },
        ),
        ("bad_noann", e("validation", 9.0, [])),
        (
            first_val[0],
            e("training", 9.0, [(label, 0.0, 2.0)]),
        ),  # duplicate id: the first entry is kept
    ]
    return leaves, database


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The tiny dataset with every bad input, run uninterrupted through every stage (one epoch
    each)."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("reliability")
    p = yaml.safe_load(TINY.read_text())
    p["data"]["tune_subset"] = None  # training and validation only, as the real ActivityNet
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = dkp(root, "synthesize")
    assert res.returncode == 0, res.stderr
    videos = root / "videos"
    shutil.copytree(root / p["data"]["videos"], videos)
    _write_bad_videos(videos)
    leaves, database = _annotations(json.loads((root / p["data"]["annotations"]).read_text()))
    M.write_activitynet(root / "anet.json", leaves, database)
    p["data"].update(source="activitynet", annotations=str(root / "anet.json"), videos=str(videos))
    for phase in ("teacher", "student", "plain_student"):  # exactness needs no accuracy
        p["train"][phase]["epochs"] = 1
    p["train"]["student"].update(ns_range=[4, 8], nt_range=[2, 4])
    p["run"]["seeds"] = [0]  # one seed: these tests are about bad inputs, not seeds
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    # every stage through dkp's command-line entry point, in one process so torch is imported once
    runner = (
        "import sys; from dkp.cli import main, PER_SEED\n"
        f"for stage in {STAGES!r}:\n"
        "    print('stage', stage, file=sys.stderr, flush=True)\n"
        "    seed = ['--seed', '0'] if stage in PER_SEED else []\n"
        "    rc = main([stage, '--params', 'params.yaml', *seed])\n"
        "    if rc: sys.exit(rc)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", runner], cwd=root, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return root, p


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()
    }


def _hidden(folder: Path) -> list[Path]:
    return [f for f in folder.rglob(".*")]


# ---- bad inputs ---------------------------------------------------------------------------------


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


@pytest.mark.slow
def test_every_bad_input_is_recorded_with_its_reason(pipeline):
    root, _ = pipeline
    manifest = pd.read_csv(root / "data/manifest.csv", keep_default_na=False).set_index("id")
    shards = sorted(root.glob("data/frames/shard-*/index.csv"))
    index = pd.concat([pd.read_csv(f, keep_default_na=False) for f in shards])
    index = index.set_index("id")
    for vid, (subset, stage, reason) in BAD_VIDEOS.items():
        row = manifest.loc[vid]
        assert row["subset"] == subset, vid
        if stage == "missing":
            assert (row["status"], row["reason"]) == ("missing", reason)
            continue
        if stage == "ingest":
            assert row["status"] == "unreadable", vid
            assert vid not in index.index, vid
            got = row["reason"]
        else:  # opens at ingest, fails to decode at extraction
            assert (row["status"], row["reason"]) == ("ok", ""), vid
            assert (index.loc[vid, "status"], index.loc[vid, "n_frames"]) == ("unreadable", 0), vid
            got = index.loc[vid, "reason"]
        assert got and "\n" not in got and str(root) not in got, (vid, got)
        assert got.startswith(reason), (vid, got)
    skipped = pd.read_csv(root / "data/skipped.csv", keep_default_na=False)
    got_rows = {(r.id, r.reason, r.detail) for r in skipped.itertuples()}
    want = {(vid, reason, detail) for vid, (reason, detail) in BAD_ROWS.items()}
    assert want <= got_rows
    [(dup, reason, _)] = got_rows - want
    assert reason == "duplicate id"
    # the first entry is kept, the training one dropped
    assert manifest.loc[dup, "subset"] == "validation"


@pytest.mark.slow
def test_bad_input_counts_reach_the_data_report(pipeline):
    root, _ = pipeline
    report = json.loads((root / "results/data_report.json").read_text())
    want = {
        "training": {"missing": 0, "unreadable_ingest": 5, "unreadable_extraction": 0},
        "validation": {"missing": 1, "unreadable_ingest": 2, "unreadable_extraction": 1},
    }
    for subset, counts in want.items():
        got = report["subsets"][subset]
        assert {k: got[k] for k in counts} == counts, subset
        assert got["not_extracted"] == 0
    assert report["subsets"]["training"]["ok"] == report["subsets"]["training"]["videos"] - 5
    assert report["subsets"]["validation"]["ok"] == report["subsets"]["validation"]["videos"] - 4
    dup = {"duplicate id": 1}
    assert report["dropped_rows"] == {reason: 1 for reason, _ in BAD_ROWS.values()} | dup
    listed = {s["id"]: (s["subset"], s["stage"], s["reason"]) for s in report["skipped"]}
    for vid, (subset, stage, reason) in BAD_VIDEOS.items():
        got_subset, got_stage, got_reason = listed[vid]
        assert (got_subset, got_stage) == (subset, "frames" if stage == "frames" else "ingest"), vid
        kind = "missing" if stage == "missing" else "unreadable"
        assert got_reason.startswith(f"{kind}: {reason}"), (vid, got_reason)
    for vid, (reason, detail) in BAD_ROWS.items():
        assert listed[vid][2] == reason + (f": {detail}" if detail else ""), vid
    assert len(report["skipped"]) == len(BAD_VIDEOS) + len(BAD_ROWS) + 1  # + the duplicate


@pytest.mark.slow
def test_bad_input_counts_reach_the_results_report(pipeline):
    """results/README.md (dkp figures) shows every count of data_report.json and every skipped id,
    and the evaluated/skipped video counts of curves.csv agree with it."""
    root, _ = pipeline
    report = json.loads((root / "results/data_report.json").read_text())
    text = (root / "results/README.md").read_text()
    for subset, c in report["subsets"].items():
        cells = [
            c[k]
            for k in (
                "videos",
                "ok",
                "missing",
                "unreadable_ingest",
                "unreadable_extraction",
                "not_extracted",
            )
        ]
        assert f"| {subset} | " + " | ".join(str(v) for v in cells) + " |" in text, subset
    for reason, n in report["dropped_rows"].items():
        assert f"{reason} {n}" in text, reason
    for s in report["skipped"]:
        assert f"- `{s['id']}` ({s['subset']}, {s['stage']}): {s['reason']}" in text, s["id"]
    val = report["subsets"]["validation"]
    curves = pd.read_csv(root / "results/curves.csv")
    assert (curves["videos_evaluated"] == val["ok"]).all()
    skipped = val["missing"] + val["unreadable_ingest"] + val["unreadable_extraction"]
    assert (curves["videos_skipped"] == skipped).all() and skipped == 4
    assert f"Videos evaluated per configuration: {val['ok']}; skipped: {skipped}." in text


@pytest.mark.slow
def test_short_video_is_fed_its_distinct_frames_through_the_sweep(pipeline):
    """A 3 s video (3 frames) under configurations asking for 5 or 20: each configuration is fed
    (and charged for) the distinct nearest frames only, scores are finite, and the nominal counts
    are kept."""
    root, p = pipeline
    shard = next(f.parent for f in root.glob(f"data/frames/shard-*/{SHORT}.npy"))
    times = np.load(shard / f"{SHORT}.t.npy")
    assert times.tolist() == [0.5, 1.5, 2.5]
    from dkp import configs, sampling

    asked = 0
    for c in configs.build(p):
        pred = read_predictions(root / "results/predictions/seed-0" / c.group / f"{c.name}.npz")
        v = pred.video_ids.tolist().index(SHORT)
        assert np.isfinite(pred.scores[v]).all() and pred.scores[v].sum() == pytest.approx(
            1.0, abs=1e-4
        ), c.name
        duration = SHORT_SECONDS
        for fed, nominal in ((pred.ns[v], pred.ns_nominal[v]), (pred.nt[v], pred.nt_nominal[v])):
            if nominal:
                assert (
                    fed
                    == sampling.distinct_count(times, duration, int(nominal))
                    <= min(nominal, len(times))
                ), c.name
                asked += nominal > len(times)
        assert pred.gflops[v] > 0
    assert asked >= 4
    s3 = p["sweep"]["s3_config"]
    group = configs.by_name(p)[s3].group
    rows = json.loads(
        (root / "results/predictions/seed-0" / group / f"{s3}.frames.json").read_text()
    )
    row = next(r for r in rows if r["id"] == SHORT)
    ns = configs.by_name(p)[s3].ns
    centres = (np.arange(ns) + 0.5) * SHORT_SECONDS / ns
    # argmin: first of a tie
    nearest = times[np.argmin(np.abs(times[None, :] - centres[:, None]), axis=1)]
    # 20 asked, 3 distinct fed
    assert row["times"] == sorted(set(nearest.tolist())) == times.tolist()
    assert len(row["student"]) == len(row["dste"]) == 3
    assert all(0 <= x <= 1 for x in row["student"] + row["dste"])


def _kinetics_without_class_list(p):
    p["data"].update(
        source="kinetics", annotations="params.yaml", videos=".", class_list=None, tune_subset=None
    )


# Cross-key rules of dkp.params that tests/test_params.py (types, ranges, enums, keys, YAML, paths,
# frames.crop) leaves out: (case, edit of the tiny params, expected fragment of the one line)
CROSS_KEY_CASES = [
    (
        "shot lengths reversed",
        _set("data.synthetic.shot_seconds", [16, 6]),
        "data.synthetic.shot_seconds: expected [shortest, longest] with shortest <= longest, found "
        "[16, 6]",
    ),
    (
        "ns_range reversed",
        _set("train.student.ns_range", [32, 4]),
        "train.student.ns_range: expected [low, high] with low <= high, found [32, 4]",
    ),
    (
        "nt_range reversed",
        _set("train.student.nt_range", [8, 2]),
        "train.student.nt_range: expected [low, high]",
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


# ---- interruption -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _stopped(pid: int) -> bool:
    """Every thread of pid is stopped (state T) or the process is gone."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return all(s in ("T", "t", "Z", "X") for s in states)


def _kill_9_when(
    workdir: Path, stage: str, ready, timeout: float = 300, args=(), at_kill=None
) -> tuple[int, list[int]]:
    """Start `dkp <stage>`, SIGKILL its process (kill -9 <pid>) at a moment when ready() is true.
    Returns its exit status (-9 unless it finished first) and the pids of its children at that
    moment.

    ready() is seen true by polling, and by the time a kill lands the stage may have moved on (a
    group's temporary renamed, say). So the stage and its children are frozen with SIGSTOP first,
    ready() is asked again (and at_kill() called) while nothing can change, and only then is the
    kill sent and the children let go on; otherwise everything is let go on and polling resumes."""
    proc = subprocess.Popen(
        ["dkp", stage, *args, "--params", "params.yaml"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            return proc.returncode, []
        assert time.monotonic() < deadline, f"dkp {stage}: kill point not reached"
        if ready():
            proc.send_signal(signal.SIGSTOP)
            while not _stopped(proc.pid):
                time.sleep(0.0002)
            children = _children(proc.pid)  # fixed while the stage is stopped
            for pid in children:
                _signal(pid, signal.SIGSTOP)
            while not all(_stopped(pid) for pid in children):
                time.sleep(0.0002)
            if ready():
                if at_kill is not None:
                    at_kill()
                break
            for pid in children:
                _signal(pid, signal.SIGCONT)
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    rc = proc.wait()
    for pid in children:
        _signal(pid, signal.SIGCONT)
    return rc, children


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_kill_9_during_extraction_then_rerun_is_byte_identical(pipeline, tmp_path):
    root, p = pipeline
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(root / "params.yaml", work / "params.yaml")
    assert dkp(work, "data").returncode == 0
    frames = work / "data" / "frames"

    def some_video_done():
        return any(not f.name.startswith(".") for f in frames.glob("shard-*/*.npy"))

    def videos_done() -> set[str]:
        return {f.name for f in frames.glob("shard-*/*.t.npy")}

    at_kill: list[set[str]] = []
    rc, workers = _kill_9_when(
        work, "frames", some_video_done, at_kill=lambda: at_kill.append(videos_done())
    )
    assert rc == -signal.SIGKILL, f"dkp frames ended (rc {rc}) before it could be killed"
    assert workers, "expected decoding worker processes"
    # orphaned workers finish (atomically) at most the video each holds, then exit: not the queued
    # ones
    deadline = time.monotonic() + 60
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "worker processes outlived the killed stage"
    assert not list(frames.glob("shard-*/index.csv")), "a shard was marked complete"
    assert len(videos_done()) <= len(at_kill[0]) + p["frames"]["workers"], (
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
def test_kill_9_during_the_sweep_then_rerun_is_byte_identical(pipeline, tmp_path):
    """Killed while it writes results/predictions: no folder under a group's name is partial (only a
    hidden temporary is), and the rerun removes the temporary and writes exactly the uninterrupted
    outputs."""
    root, _ = pipeline
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(root / "params.yaml", work / "params.yaml")
    for name in ("data", "models"):
        os.symlink(root / name, work / name)
    preds = work / "results" / "predictions" / "seed-0"

    def writing():
        try:
            return any(n.endswith(".tmp") for n in os.listdir(preds))
        except FileNotFoundError:
            return False

    reference = _tree(root / "results" / "predictions" / "seed-0")
    ref_groups = {Path(k).parts[0] for k in reference}
    # the kill lands mid-write unless the sweep writes its last group first: then try again
    for _attempt in range(8):
        shutil.rmtree(work / "results", ignore_errors=True)
        rc, _children = _kill_9_when(work, "sweep", writing, args=("--seed", "0"))
        assert rc in (0, -signal.SIGKILL), f"dkp sweep failed (rc {rc})"
        visible = [d for d in sorted(preds.iterdir()) if not d.name.startswith(".")]
        for d in (
            visible
        ):  # a group's folder appears only complete (at most a hidden temporary is partial)
            assert d.name in ref_groups
            assert _tree(d) == {
                k.split("/", 1)[1]: v for k, v in reference.items() if k.startswith(d.name + "/")
            }
        if rc == -signal.SIGKILL and len(visible) < len(ref_groups) and writing():
            # killed mid-write: some groups missing and one half written in a hidden temporary
            break
    else:
        pytest.fail("dkp sweep was never killed while it wrote a group")
    res = dkp(work, "sweep", "--seed", "0")
    assert res.returncode == 0, res.stderr
    assert not _hidden(preds), "temporaries left behind"
    assert _tree(preds) == reference


# ---- disk hygiene -------------------------------------------------------------------------------


def test_failed_atomic_write_keeps_the_old_output_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"run": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"run": ')  # half written, then the writer fails
            raise RuntimeError("disk full")
    folder = tmp_path / "group"
    with atomic_dir(folder) as tmp:
        (tmp / "a.npz").write_bytes(b"complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(folder) as tmp:
            (tmp / "a.npz").write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert (folder / "a.npz").read_bytes() == b"complete"
    assert sorted(f.name for f in tmp_path.rglob("*")) == ["a.npz", "group", "out.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
