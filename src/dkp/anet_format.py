"""ActivityNet v1.3 classification result files: export, and scoring as the official evaluator does.

The result format is the one Evaluation/eval_classification.py of
github.com/activitynet/ActivityNet reads: {"version": "VERSION 1.3",
"results": {video_id: [{"label": class name, "score": float}, ...]},
"external_data": {"used": false, "details": ""}}. Its video ids are the keys of
the annotation file's "database" (YouTube ids, no "v_" prefix; the prefix is
only on the downloaded file names). Manifest ids are those keys already (dkp
data strips the prefix when it matches files to ids), so they are written as is.
"""

from __future__ import annotations

import numpy as np

from .errors import DkpError
from .metrics import MeanAP, voc_envelope_ap

VERSION = "VERSION 1.3"


def results_json(video_ids, scores: np.ndarray, class_names: list[str]) -> dict:
    """Result file contents: every class's score for every video (scores (V, C))."""
    scores = np.asarray(scores)
    if scores.shape != (len(video_ids), len(class_names)):
        raise ValueError(
            f"expected scores of shape {(len(video_ids), len(class_names))}, found {scores.shape}"
        )
    results = {}
    for vid, row in zip(video_ids, scores.tolist()):
        key = str(vid)
        if key in results:
            raise DkpError(f"two videos map to the same ActivityNet id {key!r}")
        # float(float32) is exact in JSON's float64 text, so a re-read ranks identically
        results[key] = [{"label": name, "score": float(s)} for name, s in zip(class_names, row)]
    return {"version": VERSION, "results": results, "external_data": {"used": False, "details": ""}}


def score_results(results: dict, ground_truth: dict[str, list[str]]) -> MeanAP:
    """Score a result file's contents the way the official classification evaluator does.

    `ground_truth` maps each video id of the evaluated subset to its labels (the
    evaluator's rows of the annotation file). Mirrors the evaluator step by
    step: class index in first-seen order of the ground truth; for each class,
    that class's predictions in file order, ranked by `argsort(score)[::-1]`; a
    prediction is a true positive when its video carries the class (once per
    video), otherwise a false positive; interpolated AP; mean over the classes.
    """
    for field in ("results", "version", "external_data"):
        if field not in results:
            raise DkpError(f"not an ActivityNet result file: field {field!r} missing")
    classes: dict[str, int] = {}
    gt_videos: list[set[str]] = []
    for vid, labels in ground_truth.items():
        for label in labels:
            if label not in classes:
                classes[label] = len(classes)
                gt_videos.append(set())
            gt_videos[classes[label]].add(vid)
    pred_vid: list[list[str]] = [[] for _ in classes]
    pred_score: list[list[float]] = [[] for _ in classes]
    for vid, entries in results["results"].items():
        for entry in entries:
            if entry["label"] not in classes:
                raise DkpError(
                    f"result label {entry['label']!r} has no ground-truth video "
                    f"(the official evaluator fails on it too)"
                )
            c = classes[entry["label"]]
            pred_vid[c].append(vid)
            pred_score[c].append(float(entry["score"]))
    ap = np.zeros(len(classes))
    for c in range(len(classes)):
        order = np.asarray(pred_score[c], dtype=np.float64).argsort()[::-1]
        locked: set[str] = set()
        hit = np.zeros(len(order), dtype=bool)
        for rank, i in enumerate(order):
            vid = pred_vid[c][i]
            if vid in gt_videos[c] and vid not in locked:
                hit[rank] = True
                locked.add(vid)
        tp = np.cumsum(hit).astype(np.float64)
        fp = np.cumsum(~hit).astype(np.float64)
        with np.errstate(invalid="ignore"):
            ap[c] = voc_envelope_ap(tp / (tp + fp), tp / len(gt_videos[c]))
    return MeanAP(float(ap.mean()) if len(ap) else float("nan"), ap, ())
