"""Video classification metrics: mAP (field convention), mAP (official evaluator), top-1.

Pure functions over a score matrix (V videos, C classes) and one label index per
video. Every class is scored by all videos. Values are fractions in [0, 1]; the
evaluate stage reports percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeanAP:
    value: float  # mean AP over the classes with at least one positive
    per_class: np.ndarray  # (C,) AP per class, NaN for an excluded class
    excluded: tuple[int, ...]  # classes with no positive video (left out of the mean)


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated AP: mean of the precision at each true positive, by descending score.

    Tied scores form one threshold (the whole tie group is admitted at once and
    every positive in it gets the precision at the group's end), which is what
    sklearn.metrics.average_precision_score does; without ties this is exactly
    the mean of precision@k over the ranks k of the positives. NaN without positives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, hit = scores[order], positive[order]
    tp = np.cumsum(hit)
    # last index of each group of equal scores: a threshold admits the group whole
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp_end = tp[ends].astype(np.float64)
    precision = tp_end / (ends + 1)
    new_tp = np.diff(np.r_[0.0, tp_end])
    return float(np.sum(new_tp * precision) / n_pos)


def voc_envelope_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 interpolated AP: area under the running-max envelope of precision.

    Same computation as `interpolated_prec_rec` in Evaluation/utils.py of
    github.com/activitynet/ActivityNet: pad precision with 0 on both sides and
    recall with 0 and 1, make precision non-increasing from the right, sum
    (recall step) x (envelope precision) where recall changes.
    """
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def average_precision_official(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP as the official ActivityNet classification evaluator computes it.

    Follows `compute_average_precision_classification` in
    Evaluation/eval_classification.py of github.com/activitynet/ActivityNet:
    predictions sorted by `argsort(score)[::-1]` (so every prediction is its own
    rank, ties broken by that order: the later of two tied entries ranks first),
    cumulative true/false positives give precision and recall per rank, and the
    AP is the VOC-style interpolated area (`voc_envelope_ap`). Because the
    envelope takes the best precision at any equal or higher recall, this is
    never below `average_precision` (ties included). NaN without positives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = scores.argsort()[::-1]
    hit = positive[order]
    tp = np.cumsum(hit).astype(np.float64)
    fp = np.cumsum(~hit).astype(np.float64)
    return voc_envelope_ap(tp / (tp + fp), tp / n_pos)


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"expected scores (V, C) and labels (V,), found {scores.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must index the {scores.shape[1]} classes")
    return scores, labels


def _mean_over_classes(scores, labels, ap_fn) -> MeanAP:
    scores, labels = _check(scores, labels)
    n_classes = scores.shape[1]
    per_class = np.full(n_classes, np.nan)
    present = np.zeros(n_classes, dtype=bool)
    present[np.unique(labels)] = True
    for c in np.flatnonzero(present):
        per_class[c] = ap_fn(scores[:, c], labels == c)
    excluded = tuple(int(c) for c in np.flatnonzero(~present))
    value = float(np.mean(per_class[present])) if present.any() else float("nan")
    return MeanAP(value, per_class, excluded)


def mean_ap(scores: np.ndarray, labels: np.ndarray) -> MeanAP:
    """mAP, field convention: `average_precision` per class, mean over classes with a positive."""
    return _mean_over_classes(scores, labels, average_precision)


def mean_ap_official(scores: np.ndarray, labels: np.ndarray) -> MeanAP:
    """mAP as the official evaluator reports it (`ap.mean()` over the classes in the ground truth).

    The evaluator's class index holds only classes with a ground-truth video, so
    classes without a positive are excluded exactly as in `mean_ap`. Tied scores
    are ranked by `argsort()[::-1]` over the rows in the given order, which for
    a file exported by dkp.anet_format (video ids sorted) is the file's order.
    """
    return _mean_over_classes(scores, labels, average_precision_official)


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of videos whose highest-scoring class is the label (ties: lowest class index)."""
    scores, labels = _check(scores, labels)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(scores.argmax(axis=1) == labels))
