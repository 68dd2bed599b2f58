"""The paired video bootstrap: exact weighted AP, coverage on a known model, and `dkp evaluate` end
to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dkp import configs, evaluate, layout, metrics, stats
from dkp.predictions import Predictions
from dkp.predictions import write as write_predictions
from dkp.tables import CURVE_COLUMNS


def test_resample_weights_are_counts_and_fixed_by_the_seed():
    w = stats.resample_weights(50, 300, seed=3)
    assert w.shape == (300, 50) and (w.sum(axis=1) == 50).all() and (w >= 0).all()
    assert np.array_equal(w, stats.resample_weights(50, 300, seed=3))
    assert not np.array_equal(w, stats.resample_weights(50, 300, seed=4))
    # integer counts: their float64 mean is 1 up to one division's rounding (1e-12 far above);
    # ~1/e of the videos left out
    assert abs(w.mean() - 1.0) < 1e-12 and 0.3 < (w == 0).mean() < 0.42


def _copies_in_turn(scores, labels, weights):
    """mAP by definition on a resample: each video repeated `weight` times, its copies ranked one
    after another, ties between different videos admitted whole (loops, no shortcut)."""
    aps = []
    for c in range(scores.shape[1]):
        precisions = []
        for i in np.flatnonzero((labels == c) & (weights > 0)):
            ahead = (scores[:, c] >= scores[i, c]) & (np.arange(len(labels)) != i)
            r, h = weights[ahead].sum(), weights[ahead & (labels == c)].sum()
            precisions += [(h + j) / (r + j) for j in range(1, weights[i] + 1)]
        if precisions:
            aps.append(np.mean(precisions))
    return np.mean(aps)


def test_weighted_ap_equals_metrics_on_the_repeated_rows_with_copies_in_turn():
    """Distinct scores: the resample's rows with copy j of a video scored a hair below copy j - 1
    are an ordinary sample, and metrics.mean_ap on them is the weighted AP (exact sums, float64)."""
    rng = np.random.default_rng(1)
    n_videos, n_classes = 60, 7
    labels = rng.integers(0, n_classes, n_videos)
    scores = rng.random((n_videos, n_classes))
    w = stats.resample_weights(n_videos, 40, seed=0)
    got = stats.weighted_mean_ap(scores, labels, w)
    gap = np.diff(np.sort(scores, axis=0), axis=0).min()
    for b in range(len(w)):
        rows = np.repeat(np.arange(n_videos), w[b])
        turn = np.concatenate([np.arange(k) for k in w[b]])
        jittered = scores[rows] - (turn * gap / (2 * n_videos))[:, None]
        # a class whose positives were not drawn drops out; both sides sum the same fractions
        assert got[b] == pytest.approx(metrics.mean_ap(jittered, labels[rows]).value, abs=1e-12)
    ones = stats.weighted_mean_ap(scores, labels, np.ones(n_videos))
    assert ones[0] == pytest.approx(metrics.mean_ap(scores, labels).value, abs=1e-12)


def test_weighted_ap_with_ties_between_videos_follows_the_definition():
    rng = np.random.default_rng(2)
    n_videos, n_classes = 40, 5
    labels = rng.integers(0, n_classes, n_videos)
    scores = np.floor(rng.random((n_videos, n_classes)) * 4) / 4  # many ties between videos
    w = stats.resample_weights(n_videos, 25, seed=1)
    got = stats.weighted_mean_ap(scores, labels, w)
    for b in range(len(w)):
        assert got[b] == pytest.approx(_copies_in_turn(scores, labels, w[b]), abs=1e-12)


def test_interval_and_videos_needed():
    reps = np.arange(1, 1001, dtype=float)[:, None]
    lo, hi = stats.interval(reps, 0.95)
    # float64 linear interpolation between two integers: within 1e-13 (approx: 1e-6 relative)
    assert lo[0] == pytest.approx(25.975) and hi[0] == pytest.approx(975.025)
    # half-width 2 at 240 videos, effect 1: the width must halve, so 4x the videos
    assert stats.videos_to_exclude(240, 1.0, 2.0) == 960
    assert stats.videos_to_exclude(240, 0.0, 2.0) is None


def _known_model(rng, n_videos, n_classes, strength):
    """Scores of two configurations sharing each video's difficulty; b separates classes better by
    `strength`."""
    labels = rng.permutation(np.arange(n_videos) % n_classes)
    shared = rng.standard_normal((n_videos, n_classes))
    onehot = np.eye(n_classes)[labels]
    a = 2.5 * onehot + shared + 0.4 * rng.standard_normal((n_videos, n_classes))
    b = (2.5 + strength) * onehot + shared + 0.4 * rng.standard_normal((n_videos, n_classes))
    return labels, a.astype(np.float32), b.astype(np.float32)


def test_bootstrap_interval_of_a_paired_difference_covers_the_truth():
    """The known model's true mAP difference (+8.6 points at 66 % mAP, from 20,000 videos) lies in
    the 95 % interval of the paired difference in 92-99 % of 200 simulated validation sets of 240
    videos (binomial sd 1.5 % at 95 %; measured: 97 %)."""
    rng = np.random.default_rng(0)
    labels, a, b = _known_model(rng, 20_000, 20, 0.3)
    truth = metrics.mean_ap(b, labels).value - metrics.mean_ap(a, labels).value
    covered, widths = 0, []
    for i in range(200):
        labels, a, b = _known_model(np.random.default_rng(100 + i), 240, 20, 0.3)
        draws = stats.Resamples.draw(labels, 20, 400, seed=i)
        d = draws.mean_ap(b) - draws.mean_ap(a)
        lo, hi = stats.interval(d, 0.95)
        covered += lo <= truth <= hi
        widths.append(hi - lo)
    assert 0.92 <= covered / 200 <= 0.99, covered
    single = stats.interval(draws.mean_ap(a), 0.95)
    assert np.median(widths) < 0.8 * (single[1] - single[0])  # pairing: the difference is narrower


def _many_mean_ap(scores, labels):
    """(n,) mAP of n datasets at once, scores (n, V, C), labels (n, V): by sorting, no ties."""
    n, v, c = scores.shape
    aps = np.zeros((n, c))
    for k in range(c):
        order = np.argsort(-scores[:, :, k], axis=1, kind="stable")
        pos = np.take_along_axis(labels == k, order, axis=1)
        precision = np.cumsum(pos, axis=1) / np.arange(1, v + 1)
        aps[:, k] = (precision * pos).sum(axis=1) / np.maximum(pos.sum(axis=1), 1)
    return aps.mean(axis=1)


def _datasets(rng, n, n_videos, n_classes, strength):
    labels = np.stack([rng.permutation(np.arange(n_videos) % n_classes) for _ in range(n)])
    return labels, strength * np.eye(n_classes)[labels] + rng.standard_normal(
        (n, n_videos, n_classes)
    )


@pytest.mark.parametrize("strength", [1.5, 2.2])  # expected mAP 38 % and 64 %
def test_single_configuration_interval_covers_the_expected_map(strength):
    """A known model, 240 videos and 20 classes as the default: the expected 240-video mAP (the mean
    over 4,000 simulated validation sets) lies in the 95 % interval of a single configuration
    (1,000 resamples centred on the point, stats.centred) in 95 +- 2.5 % of 600 simulated
    validation sets (binomial sd 0.9 %), and misses it about as often on either side. Measured:
    93.7 % (20 below, 18 above) and 94.2 % (22, 13); without the centring 92.3 % at 38 % mAP, most
    misses below (1,000 sets), and with the copies of a video admitted as one tie group 87 %."""
    n_videos, n_classes, sims = 240, 20, 600
    labels, scores = _datasets(np.random.default_rng(0), 4000, n_videos, n_classes, strength)
    truth = _many_mean_ap(scores, labels).mean()
    labels, scores = _datasets(np.random.default_rng(1), sims, n_videos, n_classes, strength)
    points = _many_mean_ap(scores, labels)
    below = above = 0
    for i in range(sims):
        reps = stats.Resamples.draw(labels[i], n_classes, 1000, seed=i).mean_ap(scores[i])
        lo, hi = stats.interval(stats.centred(reps, points[i]), 0.95)
        below, above = below + (truth < lo), above + (truth > hi)
    assert 0.925 <= 1 - (below + above) / sims <= 0.975, (below, above)
    assert abs(below - above) / sims < 0.03, (below, above)


def test_import_evaluate_loads_no_torch():
    code = "import sys, dkp.evaluate; print('torch' in sys.modules, 'dkp.models' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


# --- dkp evaluate on prediction files written here ------------------------------------------------

N_VIDEOS, N_CLASSES = 48, 4


def write_run(root, p: dict, seeds=(0, 1)) -> None:
    """Prediction files of every configuration for each seed, S-3 frames, classes, data report."""
    rng = np.random.default_rng(7)
    labels = np.arange(N_VIDEOS) % N_CLASSES
    ids = np.array([f"v_{i:03d}" for i in range(N_VIDEOS)])
    onehot = np.eye(N_CLASSES)[labels]
    for seed in seeds:
        for k, c in enumerate(configs.build(p)):
            nt = np.full(N_VIDEOS, c.nt or 4)
            ns = np.full(N_VIDEOS, c.ns or 0)
            scores = (0.2 * k / 10 + 0.6) * onehot + rng.random((N_VIDEOS, N_CLASSES))
            pred = Predictions(
                ids,
                labels,
                scores.astype(np.float32),
                ns - (ns > 8),
                nt,
                ns,
                nt,
                0.1 * ns + 1.0 * nt + rng.random(N_VIDEOS),
            )
            path = root / layout.predictions_file(seed, c.group, c.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_predictions(path, pred)
        c = configs.by_name(p)[p["sweep"]["s3_config"]]
        frames = [
            {
                "id": str(v),
                "times": [0.5, 1.5],
                "student": [0.2, 0.3],
                "dste": [0.3 + 0.01 * seed, 0.4],
            }
            for v in ids[::2]
        ]
        (root / layout.s3_frames_file(seed, c.group, c.name)).write_text(json.dumps(frames))
    (root / "data").mkdir(exist_ok=True)
    (root / layout.CLASSES).write_text("".join(f"class {i}\n" for i in range(N_CLASSES)))
    (root / "results" / "data_report.json").write_text(
        json.dumps({"subsets": {p["data"]["val_subset"]: {"videos": N_VIDEOS + 1, "missing": 1}}})
    )


@pytest.fixture
def evaluated(tiny_workdir, tiny_params, monkeypatch):
    monkeypatch.chdir(tiny_workdir)
    p = tiny_params | {"run": tiny_params["run"] | {"seeds": [0, 1]}}
    write_run(tiny_workdir, p)
    evaluate.run(p, None)
    return tiny_workdir, p


def test_evaluate_writes_intervals_and_draws(evaluated):
    root, p = evaluated
    table = pd.read_csv(root / layout.CURVES)
    assert list(table.columns) == CURVE_COLUMNS and len(table) == len(configs.build(p))
    assert (table["mAP_lo"] <= table["mAP"]).all() and (table["mAP"] <= table["mAP_hi"]).all()
    assert (table["mAP_seed_min"] <= table["mAP"]).all() and (
        table["mAP"] <= table["mAP_seed_max"]
    ).all()
    assert (table["seeds"] == 2).all() and (table["videos_evaluated"] == N_VIDEOS).all()
    assert (table["videos_skipped"] == 1).all()
    with_s = table[table["n_s_nominal"] > 8]  # the writer fed one student frame fewer than asked
    # curves.csv holds 6 significant digits (%.6g): shares within 5e-7, mAP (0-100) within 5e-5
    assert np.allclose(
        with_s["distinct_s"], (with_s["n_s_nominal"] - 1) / with_s["n_s_nominal"], atol=1e-5
    )
    assert np.allclose(table["distinct_t"], 1.0)
    with np.load(root / layout.BOOTSTRAP) as z:
        assert z["map_replicates"].shape == (p["evaluate"]["bootstrap"]["resamples"], len(table))
        assert z["map_seeds"].shape == (2, len(table)) and z["weights"].shape[1] == N_VIDEOS
        assert np.allclose(z["map_seeds"].mean(axis=0), table["mAP"], atol=1e-3)
        gain = z["s3_gain"]
        assert gain.shape == (2, N_VIDEOS) and np.isnan(gain[:, 1::2]).all()
        # float64 differences of the writer's scores: 1-ulp level, allclose's rtol 1e-5 far above
        assert np.allclose(gain[0, ::2], 0.1) and np.allclose(gain[1, ::2], 0.105)
    m = json.loads((root / layout.METRICS).read_text())
    op = m["operating_points"][p["evaluate"]["operating_points"][0]]
    assert op["mAP_lo"] <= op["mAP"] <= op["mAP_hi"] and m["intervals"]["seeds"] == 2
    assert (root / layout.ANET / "seed-1").is_dir()


def test_evaluate_is_byte_identical_on_rerun(evaluated):
    root, p = evaluated
    outs = [layout.CURVES, layout.BOOTSTRAP, layout.METRICS]
    before = [(root / f).read_bytes() for f in outs]
    evaluate.run(p, None)
    assert before == [(root / f).read_bytes() for f in outs]


def test_evaluate_refuses_seeds_with_other_videos(evaluated):
    root, p = evaluated
    c = configs.build(p)[3]
    path = root / layout.predictions_file(1, c.group, c.name)
    from dkp.predictions import read

    pred = read(path)
    pred.video_ids = pred.video_ids[::-1].copy()
    write_predictions(path, pred)
    with pytest.raises(evaluate.DkpError, match="other videos"):
        evaluate.load_all(p)
