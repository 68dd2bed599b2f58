"""`dkp figures` end to end on hand-made inputs: curves.csv, frames.json, frame files, classes.

The inputs follow the README's file contracts and are written here, so these
tests exercise the real rendering (Agg, PNG and PDF) and report writing.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dkp import cli, configs
from dkp.figures import curves, report, s3

G_STUDENT, G_TEACHER, MEAN_DURATION = 0.30, 4.1, 60.0


def curves_table(p: dict) -> pd.DataFrame:
    """A plausible curves.csv for every configuration params declare (saturating mAP in GFLOPs)."""
    rows = []
    for c in configs.build(p):
        if c.strategy == "fixed":
            nt = MEAN_DURATION / c.rt
            ns = nt * c.ratio
        else:
            ns, nt = c.ns or 0, c.nt or 0
        g = ns * G_STUDENT + nt * G_TEACHER + 0.01 * (ns > 0) * (nt > 0)
        base = {"dste": 75.0, "dkp": 73.0, "teacher": 72.0, "student": 55.0, "student-kd": 58.0}[
            c.method
        ]
        bonus = 2.0 if c.strategy == "fixed" else (0.5 * (c.ratio or 0) / 8)
        m = base + bonus - 30.0 * math.exp(-g / 6.0)
        half = 2.0 + 3.0 * math.exp(-g / 6.0)  # wider where the curves are steep
        rows.append(
            {
                "name": c.name,
                "group": c.group,
                "figure": c.figure,
                "method": c.method,
                "strategy": c.strategy,
                "ratio": c.ratio,
                "n_s": 0.9 * ns,
                "n_t": nt,
                "n_s_nominal": ns,
                "n_t_nominal": nt,
                "distinct_s": 0.9 if ns else None,
                "distinct_t": 1.0 if nt else None,
                "fed_as_named": 0.9 if ns else 1.0,
                "r_s": c.rs,
                "r_t": c.rt,
                "gflops": g,
                "mAP": m,
                "mAP_lo": m - half,
                "mAP_hi": m + 0.8 * half,
                "mAP_seed_min": m - 1.0,
                "mAP_seed_max": m + 1.0,
                "seeds": 2,
                "mAP_official": m - 0.4,
                "top1": m + 3.0,
                "top1_lo": m,
                "top1_hi": m + 6.0,
                "videos_evaluated": 4,
                "videos_skipped": 0,
            }
        )
    return pd.DataFrame(rows)


def bootstrap_arrays(
    table: pd.DataFrame, n_videos: int = len("abcd"), resamples: int = 300
) -> dict:
    """results/bootstrap.npz as dkp evaluate writes it, with replicates scattered around the table's
    mAP."""
    from dkp import stats

    rng = np.random.default_rng(5)
    m = table["mAP"].to_numpy(float)
    seeds = np.vstack([m - 1.0, m + 1.0])
    reps = (
        m
        + 1.5 * rng.standard_normal((resamples, 1))
        + 0.5 * rng.standard_normal((resamples, m.size))
    )
    return {
        "names": table["name"].to_numpy(str),
        "groups": table["group"].to_numpy(str),
        "gflops": table["gflops"].to_numpy(float),
        "seeds": np.array([0, 1]),
        "map_seeds": seeds,
        "map_replicates": reps,
        "map_video_replicates": reps,
        "weights": stats.resample_weights(n_videos, resamples, 0).astype(np.uint16),
        "video_ids": np.array([v for v, *_ in VIDEOS]),
        "level": np.float64(0.95),
        "s3_gain": np.array([[g for *_, g in VIDEOS]] * 2),
        "seed_multipliers": stats.seed_multipliers(2, resamples, 0),
    }


def make_video(vid: str, label: str, index: int, duration: float, gain: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    times = np.arange(0.5, duration, 1.0)
    student = np.clip(0.3 + 0.2 * rng.standard_normal(times.size), 0, 1)
    return {
        "id": vid,
        "label": label,
        "label_index": index,
        "duration": duration,
        "segments": [[duration * 0.2, duration * 0.5], [duration * 0.7, duration * 0.8]],
        "times": times.tolist(),
        "student": student.tolist(),
        "dste": np.clip(student + gain, 0, 1).tolist(),
    }


def write_frames(root: Path, p: dict, vid: str, duration: float, side: int = 32) -> None:
    """data/frames/shard-<crc32 % shards>/<id>.npy + <id>.t.npy + index.csv, as the frames stage
    does."""
    shard = root / "data" / "frames" / f"shard-{zlib.crc32(vid.encode()) % p['frames']['shards']}"
    shard.mkdir(parents=True, exist_ok=True)
    times = np.arange(0.0, duration, 1.0 / p["frames"]["fps"])
    t = np.linspace(0, 1, times.size)[:, None, None, None]
    yy, xx = np.mgrid[0:side, 0:side][..., None] / side
    frames = (
        255 * np.concatenate([t + 0 * xx, xx + 0 * t, yy + 0 * t], axis=-1).clip(0, 1)
    ).astype(np.uint8)
    np.save(shard / f"{vid}.npy", frames)
    np.save(shard / f"{vid}.t.npy", times.astype(np.float64))
    index = shard / "index.csv"
    head = "" if index.exists() else "id,status,reason,n_frames,height,width\n"
    with open(index, "a") as fh:
        fh.write(f"{head}{vid},ok,,{times.size},{side},{side}\n")


VIDEOS = [
    ("v_aaa", "Applying sunscreen", 0, 30.0, 0.25),
    ("v_bbb", "Arm wrestling", 1, 45.0, 0.10),
    ("v_ccc", "Archery", 2, 20.0, -0.05),
    ("v_ddd", "Ballet", 3, 12.0, 0.40),
]


def build_inputs(root: Path, p: dict) -> list[dict]:
    """Every input of `dkp figures` under root; returns the frames.json records."""
    (root / "results").mkdir(exist_ok=True)
    table = curves_table(p)
    table.to_csv(root / "results" / "curves.csv", index=False)
    from dkp.predictions import save_npz

    save_npz(root / "results" / "bootstrap.npz", bootstrap_arrays(table))
    videos = [make_video(v, lab, i, d, g, seed=i) for i, (v, lab, _, d, g) in enumerate(VIDEOS)]
    path = root / s3.frames_json_path(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(videos))
    for v in videos:
        write_frames(root, p, v["id"], v["duration"])
    (root / "data" / "classes.txt").write_text("".join(f"{lab}\n" for _, lab, *_ in VIDEOS))
    return videos


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk (and proof the file is a PNG)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture
def figures_run(tiny_workdir, tiny_params, monkeypatch):
    monkeypatch.chdir(tiny_workdir)
    videos = build_inputs(tiny_workdir, tiny_params)
    assert cli.main(["figures", "--params", "params.yaml"]) == 0
    return tiny_workdir, tiny_params, videos


def test_figures_written_at_the_dpi(figures_run):
    root, p, _ = figures_run
    dpi = p["figures"]["dpi"]
    for stem in ("s1", "s2", "s3"):
        png, pdf = (
            root / "results/figures" / f"{stem}.png",
            root / "results/figures" / f"{stem}.pdf",
        )
        assert png.stat().st_size > 1000 and pdf.stat().st_size > 1000
        assert pdf.read_bytes()[:5] == b"%PDF-"
        w, h = png_size(png)
        width_in = 3.3 if stem != "s3" else 7.0
        assert w == round(width_in * dpi), (stem, w)
        if stem != "s3":
            assert h == round(curves.HEIGHT * dpi)
    import matplotlib.image as mpimg

    img = mpimg.imread(root / "results/figures/s3.png")  # decodes, and is not a blank canvas
    assert img.shape[1] == round(7.0 * dpi) and img[..., :3].std() > 0.05
    assert not list((root / "results/figures").glob(".*tmp*")), "temporaries left behind"


def test_figures_are_byte_identical_on_rerun(figures_run):
    root, _, _ = figures_run
    before = {f.name: f.read_bytes() for f in sorted((root / "results/figures").iterdir())}
    before["README.md"] = (root / "results/README.md").read_bytes()
    before["claims.json"] = (root / "results/claims.json").read_bytes()
    assert cli.main(["figures", "--params", "params.yaml"]) == 0
    after = {f.name: f.read_bytes() for f in sorted((root / "results/figures").iterdir())}
    after["README.md"] = (root / "results/README.md").read_bytes()
    after["claims.json"] = (root / "results/claims.json").read_bytes()
    assert before == after


def test_report_has_table_and_seven_verdicts(figures_run):
    root, p, _ = figures_run
    text = (root / "results/README.md").read_text()
    for c in configs.build(p):
        assert f"| {c.name} |" in text
    for n in range(1, 8):
        assert any(line.startswith(f"| {n} |") and "**" in line for line in text.splitlines()), n
        assert any(line.startswith(f"{n}. **") for line in text.splitlines()), n
    for cmd in ("make repro", "dvc repro", "snakemake --cores 2"):
        assert cmd in text
    assert (
        "`results/data_report.json` (videos per subset: ok, missing, unreadable): not available"
        in text
    )
    assert "mobilenet_v2" in text and "resnet18" in text and "1 fps" in text
    # default S-3 choice: the two largest DSTE gains of the hand-made videos
    assert "videos `v_ddd`, `v_aaa`" in text
    # every mAP with its interval, every effect with its interval and seeds; how to read them
    row = next(line for line in text.splitlines() if line.startswith("| teacher_nt5 |"))
    assert re.search(r"\| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \|", row), row
    assert re.search(r"[+-]\d+\.\d\d mAP \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\], \d of 2 seeds > 0", text)
    assert "### How to read the intervals" in text and "Paired" in text
    verdicts = json.loads((root / "results/claims.json").read_text())
    assert sorted(verdicts) == [str(n) for n in range(1, 8)]
    assert {v["status"] for v in verdicts.values()} <= {
        "holds",
        "fails",
        "inconclusive",
        "not testable",
    }
    effect = verdicts["1"]["effects"]["Fixed-4 minus Adaptive-4"]
    assert effect["lo"] <= effect["effect"] <= effect["hi"] and len(effect["seeds"]) == 2


def test_report_uses_data_report_when_present(tiny_workdir, tiny_params, monkeypatch):
    monkeypatch.chdir(tiny_workdir)
    build_inputs(tiny_workdir, tiny_params)
    counts = {
        "videos": 4,
        "ok": 3,
        "missing": 1,
        "unreadable_ingest": 0,
        "unreadable_extraction": 0,
    }
    (tiny_workdir / "results" / "data_report.json").write_text(
        json.dumps(
            {  # dkp data-report's shape
                "source": "synthetic",
                "subsets": {"validation": counts, "training": counts | {"missing": 0, "ok": 4}},
                "dropped_rows": {"unknown class": 2},
                "skipped": [
                    {
                        "id": "v_gone",
                        "subset": "validation",
                        "stage": "ingest",
                        "reason": "missing: no file",
                    }
                ],
            }
        )
    )
    (tiny_workdir / "results" / "metrics.json").write_text(
        json.dumps(
            {  # dkp evaluate's shape
                "operating_points": {"teacher_nt5": {"mAP": 71.5, "gflops": 20.5}},
                "videos": {"evaluated": 3, "skipped": 1},
            }
        )
    )
    assert cli.main(["figures", "--params", "params.yaml"]) == 0
    text = (tiny_workdir / "results/README.md").read_text()
    assert (
        "| validation | 4 | 3 | 1 | 0 | 0 |" in text and "| training | 4 | 4 | 0 | 0 | 0 |" in text
    )
    assert "`v_gone` (validation, ingest): missing: no file" in text and "unknown class 2" in text
    assert "| teacher_nt5 | 20.5 | 71.5 |" in text, text
    assert "- videos.evaluated: 3" in text, text
    assert "not available" not in text


def test_explicit_s3_videos_and_unknown_id(tiny_workdir, tiny_params, monkeypatch, capsys):
    monkeypatch.chdir(tiny_workdir)
    build_inputs(tiny_workdir, tiny_params)
    params = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    params["figures"]["s3_videos"] = ["v_ccc", "v_bbb"]
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["figures", "--params", "params.yaml"]) == 0
    assert "videos `v_ccc`, `v_bbb`" in (tiny_workdir / "results/README.md").read_text()
    params["figures"]["s3_videos"] = ["v_nope"]
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["figures", "--params", "params.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "v_nope" in err[0]


def test_missing_inputs_give_one_line(tiny_workdir, tiny_params, monkeypatch, capsys):
    monkeypatch.chdir(tiny_workdir)
    assert cli.main(["figures", "--params", "params.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "curves.csv not found" in err[0]
    build_inputs(tiny_workdir, tiny_params)
    table = pd.read_csv(tiny_workdir / "results/curves.csv")
    table[table["group"] != "dste_ns20"].to_csv(tiny_workdir / "results/curves.csv", index=False)
    assert cli.main(["figures", "--params", "params.yaml"]) == 1
    assert "dste_ns20" in capsys.readouterr().err
    curves_table(tiny_params).to_csv(tiny_workdir / "results/curves.csv", index=False)
    (tiny_workdir / "results/bootstrap.npz").unlink()
    assert cli.main(["figures", "--params", "params.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bootstrap.npz not found" in err[0]
    from dkp.predictions import save_npz

    save_npz(tiny_workdir / "results/bootstrap.npz", bootstrap_arrays(curves_table(tiny_params)))
    for f in (tiny_workdir / "data/frames").rglob("v_ddd.npy"):  # v_ddd is drawn by default
        f.unlink()
    assert cli.main(["figures", "--params", "params.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "v_ddd" in err[0] and "Figure S-3" in err[0]
    assert (
        not (tiny_workdir / "results/README.md").exists()
        and not (tiny_workdir / "results/figures").exists()
    )


def test_a_corrupt_metrics_json_stops_the_report_with_one_line(
    tiny_workdir, tiny_params, monkeypatch, capsys
):
    monkeypatch.chdir(tiny_workdir)
    build_inputs(tiny_workdir, tiny_params)
    (tiny_workdir / "results/metrics.json").write_text('{"operating_points": {')
    assert cli.main(["figures", "--params", "params.yaml"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.json: not valid JSON" in err[0], err
    assert not (tiny_workdir / "results/README.md").exists()


def test_strip_frames_line_up_with_time_bins():
    times = np.arange(0.0, 40.0, 1.0)
    idx, edges = s3.strip_indices(times, 40.0, 8)
    assert list(edges) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert all(edges[k] <= times[i] <= edges[k + 1] for k, i in enumerate(idx))


ROOT = Path(__file__).resolve().parents[1]


def _curve_rows(source: str, tmp_path: Path) -> pd.DataFrame:
    """The committed run's curves.csv, or one constructed for every configuration of params.yaml;
    both have the S-2 point 20/5 on two curves, as the default sweep does."""
    if source == "committed":
        return curves.load(ROOT / "results" / "curves.csv")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    curves_table(p).to_csv(tmp_path / "curves.csv", index=False)
    return curves.load(tmp_path / "curves.csv")


def _display_boxes(fig):
    """What the drawn figure shows, in display space: curve markers (boxes), samples along
    every curve line and error bar, the legend's box, the point labels' boxes and the axes'."""
    from matplotlib.collections import LineCollection
    from matplotlib.text import Annotation, Text
    from matplotlib.transforms import Bbox

    ax = fig.axes[0]
    r = fig.canvas.get_renderer()
    markers, samples, centres = [], [], []
    for line in ax.lines:
        xy = ax.transData.transform(line.get_xydata())
        if line.get_label().startswith("_"):  # error-bar caps
            samples.append(xy)
            continue
        half = 0.5 * line.get_markersize() * fig.dpi / 72
        markers += [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in xy]
        centres.append(xy)
        for a, b in zip(xy[:-1], xy[1:]):
            samples.append(a + np.linspace(0, 1, 200)[:, None] * (b - a))
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                a, b = ax.transData.transform(seg[0]), ax.transData.transform(seg[-1])
                samples.append(a + np.linspace(0, 1, 200)[:, None] * (b - a))
    texts = [t for t in ax.texts if isinstance(t, Annotation)]
    for t in texts:
        t.get_window_extent(r)  # positions the text at its offset
    return {  # a label's box is its text's, without its leader line
        "markers": markers,
        "centres": np.concatenate(centres),
        "samples": np.concatenate(samples),
        "legend": ax.get_legend().get_window_extent(r),
        "labels": [(t, Text.get_window_extent(t, r)) for t in texts],
        "axes": ax.get_window_extent(r),
    }


def _overlap(a, b) -> float:
    from matplotlib.transforms import Bbox

    inter = Bbox.intersection(a, b)
    return 0.0 if inter is None else inter.width * inter.height


def _assert_legend_clear(seen: dict) -> None:
    """The rendered legend's box holds no marker, no sample of a curve line and no error bar."""
    legend = seen["legend"]
    assert not legend.count_contains(seen["samples"])
    assert not any(_overlap(legend, m) > 0 for m in seen["markers"])


@pytest.mark.parametrize("source", ["committed", "constructed"])
def test_s1_legend_covers_no_data(source, tmp_path):
    import matplotlib.pyplot as plt

    rows = _curve_rows(source, tmp_path)
    with curves.output.style():
        fig = curves.figure_s1(rows)
        seen = _display_boxes(fig)
    try:
        _assert_legend_clear(seen)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("source", ["committed", "constructed"])
def test_s2_labels_and_legend_cover_nothing(source, tmp_path):
    """Every S-2 point is labelled once (a point shared by two curves once, not twice); the
    labels' rendered boxes stay inside the axes, clear of each other, of every marker and of the
    legend; the legend covers no data."""
    import matplotlib.pyplot as plt

    rows = _curve_rows(source, tmp_path)
    with curves.output.style():
        fig = curves.figure_s2(rows)
        seen = _display_boxes(fig)
    try:
        _assert_legend_clear(seen)
        shown = rows[rows["group"].isin(list(curves.S2_STYLE))]
        anchors = {
            (round(r.gflops, 9), round(r.mAP, 9), curves.point_label(r)) for r in shown.itertuples()
        }
        labels = seen["labels"]
        got = [(round(t.xy[0], 9), round(t.xy[1], 9), t.get_text()) for t, _ in labels]
        assert sorted(got) == sorted(anchors)  # one label per distinct point: no duplicates
        assert len(anchors) < len(shown)  # 20/5 is on nt-5 and on ns-20
        boxes = [b for _, b in labels]
        for i, a in enumerate(boxes):
            assert _overlap(a, seen["axes"]) == pytest.approx(a.width * a.height), got[i]
            assert _overlap(a, seen["legend"]) == 0, got[i]
            hit = [j for j, m in enumerate(seen["markers"]) if _overlap(a, m) > 0]
            assert not hit, (got[i], hit)
            for j in range(i + 1, len(boxes)):
                assert _overlap(a, boxes[j]) == 0, (got[i], got[j])
        # a label names its own point: nearer its marker than any other's, or tied to it by a
        # leader line that passes no other marker
        ax = fig.axes[0]
        half = 0.5 * curves.output.STYLE["lines.markersize"] * fig.dpi / 72
        for (t, box), name in zip(labels, got):
            own = ax.transData.transform(t.xy)
            others = seen["centres"][np.hypot(*(seen["centres"] - own).T) > 1.0]
            if t.arrow_patch is None:
                gap = [_box_distance(box, c) for c in others]
                assert _box_distance(box, own) < min(gap), name
            else:
                end = np.clip(own, [box.x0, box.y0], [box.x1, box.y1])
                along = own + np.linspace(0, 1, 200)[:, None] * (end - own)
                near = np.hypot(*(along[:, None, :] - others[None]).transpose(2, 0, 1)).min()
                assert near > half, name
    finally:
        plt.close(fig)


def _box_distance(box, xy) -> float:
    dx = max(box.x0 - xy[0], xy[0] - box.x1, 0.0)
    dy = max(box.y0 - xy[1], xy[1] - box.y1, 0.0)
    return float(np.hypot(dx, dy))


def test_captions_say_what_the_bars_are(figures_run):
    root, _, _ = figures_run
    text = (root / "results/README.md").read_text()
    rows = pd.read_csv(root / "results/curves.csv")
    n, seeds = int(rows["videos_evaluated"].max()), int(rows["seeds"].max())
    want = (
        f"95 % intervals over {n} validation videos and {seeds} seeds (bootstrap over videos and "
        "seeds)"
    )
    for fig in ("S-1", "S-2"):
        caption = next(line for line in text.splitlines() if line.startswith(f"Figure {fig}:"))
        assert want in caption and "video-bootstrap" not in caption, caption
    caption = next(line for line in text.splitlines() if line.startswith("Figure S-3:"))
    assert s3.RULE in caption


def _gain_video(vid: str, label_index: int, gain: float) -> dict:
    times = np.arange(0.5, 10.0, 1.0)
    return {
        "id": vid,
        "label": f"class-{label_index}",
        "label_index": label_index,
        "times": times.tolist(),
        "student": [0.25] * times.size,
        "dste": [0.25 + gain] * times.size,
    }


def test_s3_rule_median_video_of_the_top_and_the_median_class():
    # class mean gains 0.30, 0.20, 0.10, 0.05, -0.25: ranks 0-4, median rank (5 - 1) // 2 = 2
    gains = {
        0: [0.50, 0.10, 0.30],
        1: [0.20, 0.20],
        2: [-0.10, 0.00, 0.40, 0.10],
        3: [0.05],
        4: [-0.30, -0.20],
    }
    videos = [_gain_video(f"v{c}{k}", c, g) for c, gs in gains.items() for k, g in enumerate(gs)]
    chosen = s3.select(videos, None)
    # class 0's median video (0.30), not its largest gain (0.50); class 2's lower median (0.00)
    assert [v["id"] for v in chosen] == ["v02", "v21"]
    assert "ranked 1 of 5" in chosen[0]["reason"] and "ranked 3 of 5" in chosen[1]["reason"]
    # the two largest gains, both of class 0 and 2, are what the rule does not pick
    assert {v["label_index"] for v in chosen} == {0, 2}
    # two classes: the second is the other class; one class: one video
    two = [v for v in videos if v["label_index"] in (3, 4)]
    assert [v["id"] for v in s3.select(two, None)] == ["v30", "v40"]
    assert [v["id"] for v in s3.select(videos[:3], None)] == ["v02"]
    # explicit ids keep working, in their order
    assert [v["id"] for v in s3.select(videos, ["v41", "v00"])] == ["v41", "v00"]


def test_s3_texts_do_not_overlap(figures_run):
    """Titles, legends and axis labels (with the rule's note) of the rendered S-3 keep clear of
    one another."""
    import matplotlib.pyplot as plt

    root, p, videos = figures_run
    chosen = s3.select(videos, None)
    loaded = [s3._load_frames(p, v["id"]) for v in chosen]
    with curves.output.style():
        fig = s3.figure(p, chosen, loaded, [])
        r = fig.canvas.get_renderer()
        fig.draw_without_rendering()
        boxes = []
        for ax in fig.axes:
            for t in (ax.title, ax._left_title, ax.xaxis.label, ax.yaxis.label):
                if t.get_text():
                    boxes.append((t.get_text(), t.get_window_extent(r)))
            if ax.get_legend():
                boxes.append(("legend", ax.get_legend().get_window_extent(r)))
    try:
        assert any("ranked 1 of" in name for name, _ in boxes)
        for i, (na, a) in enumerate(boxes):
            assert fig.bbox.x0 <= a.x0 and a.x1 <= fig.bbox.x1, na
            for nb, b in boxes[i + 1 :]:
                assert _overlap(a, b) == 0, (na, nb)
    finally:
        plt.close(fig)


def test_report_table_formats_fixed_rows(tiny_params):
    rows = curves_table(tiny_params)
    table = "\n".join(report.config_table(rows))
    fixed = next(line for line in table.splitlines() if line.startswith("| dste_fixed-4_rt16 |"))
    cells = [c.strip() for c in fixed.strip("|").split("|")]
    # mean nominal counts, shares
    assert cells[4] == "15" and cells[5] == "3.75" and cells[6] == "90% / 100%"
    assert cells[7] == "90% (short)"  # fed as named in fewer than 95 % of the videos
    assert cells[8] == "4" and cells[9] == "16"
    assert re.fullmatch(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", cells[11]) and cells[12].endswith(
        "(2)"
    )
