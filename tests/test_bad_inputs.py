"""The tiny pipeline with every bad input (fixture bad_inputs_pipeline, tests/conftest.py):
every bad video and annotation row recorded with its reason, the counts in the data report and
the results report, a video shorter than the frames asked for through the sweep; and kill -9
during the sweep, whose rerun must reproduce that run's predictions byte for byte.

Bad inputs of single videos are tested beside extraction in test_frames.py, an empty training
subset in test_train.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.bad_inputs import BAD_ROWS, BAD_VIDEOS, SHORT, SHORT_SECONDS, dkp
from fixtures.interrupt import _hidden, _kill_9_when, _tree
from fixtures.rounding import gamma

from dkp.predictions import read as read_predictions


@pytest.fixture
def pipeline(bad_inputs_pipeline):
    """The session's one run of the tiny pipeline with every bad input (tests/conftest.py)."""
    return bad_inputs_pipeline


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
        assert np.isfinite(pred.scores[v]).all(), c.name
        # a video score averages float32 probability rows (each mixing <= 2 softmax rows of C,
        # softmax_sum_tol) over its fed frames; summed here in float64
        n_classes, frames = pred.scores.shape[1], int(pred.ns[v] + pred.nt[v])
        total = float(pred.scores[v].astype(np.float64).sum())
        assert abs(total - 1.0) <= gamma(2 * n_classes + 4 + frames + 1), (c.name, total)
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
