"""Metrics against sklearn and hand-worked cases; the official-format export round trip.

Tolerances: every metric here is float64 arithmetic on at most 60 x 12 scores (ranks,
precision sums), the same on every CPU up to summation order: within n 2^-53 ~ 1e-14 of
each other. abs=1e-12 and pytest.approx's default relative 1e-6 are far above that; the
hand-worked values are exact fractions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from dkp import metrics
from dkp.anet_format import results_json, score_results


def _random_case(rng, n_videos, n_classes, tie_levels=None):
    labels = rng.integers(0, n_classes, n_videos)
    scores = rng.random((n_videos, n_classes))
    if tie_levels:  # coarse scores: many exact ties inside every class column
        scores = np.floor(scores * tie_levels) / tie_levels
    return scores.astype(np.float32), labels


@pytest.mark.parametrize("tie_levels", [None, 3, 8])
def test_mean_ap_matches_sklearn(tie_levels):
    rng = np.random.default_rng(0)
    for _ in range(40):
        scores, labels = _random_case(
            rng, int(rng.integers(2, 60)), int(rng.integers(2, 12)), tie_levels
        )
        result = metrics.mean_ap(scores, labels)
        present = sorted(set(labels.tolist()))
        want = [average_precision_score(labels == c, scores[:, c]) for c in present]
        assert result.value == pytest.approx(np.mean(want), abs=1e-12)
        for c, ap in zip(present, want):
            assert result.per_class[c] == pytest.approx(ap, abs=1e-12)


def test_average_precision_hand_cases():
    # ranks P N P: precision 1 at rank 1, 2/3 at rank 3
    assert metrics.average_precision([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)
    # a positive tied with a negative at the top: the tie is admitted whole (precision 1/2)
    assert metrics.average_precision([0.5, 0.5, 0.1], [1, 0, 0]) == pytest.approx(0.5)
    assert np.isnan(metrics.average_precision([0.3, 0.2], [0, 0]))


def test_official_envelope_exceeds_field_map_on_constructed_case():
    # ranking P N N P P: field AP = (1 + 2/4 + 3/5) / 3 = 0.7; the envelope lifts
    # precision at ranks 2-4 to the 0.6 reached at rank 5: (1 + 0.6 + 0.6) / 3
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    positive = [1, 0, 0, 1, 1]
    assert metrics.average_precision(scores, positive) == pytest.approx(0.7)
    assert metrics.average_precision_official(scores, positive) == pytest.approx(2.2 / 3)


def test_official_never_below_field_and_equal_when_precision_falls():
    rng = np.random.default_rng(3)
    for _ in range(200):
        scores, labels = _random_case(rng, 30, 4, tie_levels=int(rng.choice([0, 5])) or None)
        assert (
            metrics.mean_ap_official(scores, labels).value
            >= metrics.mean_ap(scores, labels).value - 1e-12
        )
    # precision non-increasing at the positives (P P N N): the envelope changes nothing
    assert metrics.average_precision_official([4, 3, 2, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert metrics.average_precision_official([4, 3, 2, 1], [0, 1, 0, 1]) == pytest.approx(
        (0.5 + 0.5) / 2
    )


def test_official_ties_follow_reversed_argsort():
    # all scores tied: argsort()[::-1] ranks the last row first, so a positive in the
    # last row is found at rank 1 (AP 1) and one in the first row at rank 3 (AP 1/3)
    assert metrics.average_precision_official([0.5, 0.5, 0.5], [0, 0, 1]) == pytest.approx(1.0)
    assert metrics.average_precision_official([0.5, 0.5, 0.5], [1, 0, 0]) == pytest.approx(1 / 3)


def test_classes_without_positives_are_excluded_and_reported():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    labels = np.array([0, 1, 0])
    for fn in (metrics.mean_ap, metrics.mean_ap_official):
        r = fn(scores, labels)
        assert r.excluded == (2,)
        assert np.isnan(r.per_class[2])
        assert r.value == pytest.approx(np.nanmean(r.per_class))
    assert metrics.mean_ap(scores, labels).value == pytest.approx(1.0)


def test_top1():
    scores = np.array([[0.1, 0.9], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    assert metrics.top1(scores, np.array([1, 0, 0, 0])) == pytest.approx(0.75)  # tie -> class 0
    with pytest.raises(ValueError):
        metrics.top1(scores, np.array([0, 1]))


@pytest.mark.parametrize("tie_levels", [None, 4])
def test_exported_anet_json_rescored_gives_official_map(tmp_path, tie_levels):
    rng = np.random.default_rng(7)
    scores, labels = _random_case(rng, 50, 6, tie_levels)
    ids = sorted(f"{rng.integers(0, 16**6):06x}{i}" for i in range(50))
    names = [f"class {c}" for c in range(6)]
    path = tmp_path / "dste.json"
    path.write_text(json.dumps(results_json(ids, scores, names), sort_keys=True))
    doc = json.loads(path.read_text())
    assert doc["version"] == "VERSION 1.3" and doc["external_data"] == {
        "used": False,
        "details": "",
    }
    assert len(doc["results"]) == 50 and all(len(v) == 6 for v in doc["results"].values())
    gt = {vid: [names[y]] for vid, y in zip(ids, labels)}
    rescored = score_results(doc, gt)
    ours = metrics.mean_ap_official(scores, labels)
    # per class bit-identical; the means differ only by summation order (the
    # evaluator orders classes by first appearance in the ground truth)
    assert sorted(rescored.per_class.tolist()) == sorted(ours.per_class.tolist())
    assert rescored.value == pytest.approx(ours.value, abs=1e-12)


def test_anet_scoring_counts_unknown_videos_as_false_positives():
    names = ["a", "b"]
    ids = ["x1", "x2", "x3"]
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05]], dtype=np.float32)
    gt = {
        "x1": ["a"],
        "x2": ["b"],
    }  # x3 is not in the ground truth: its 0.95 for "a" is a false positive
    r = score_results(results_json(ids, scores, names), gt)
    assert r.per_class.tolist() == pytest.approx([0.5, 1.0])
