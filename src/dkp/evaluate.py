"""`dkp evaluate`: score every configuration's predictions.

Writes results/curves.csv (one row per configuration, dkp.configs order),
results/metrics.json (DVC metrics: the operating points, video counts, excluded
classes) and results/anet/<config>.json (official ActivityNet result files for
the DSTE and Teacher configurations).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import configs as configs_mod
from . import layout, metrics
from .anet_format import results_json
from .atomic import atomic_dir, write_csv, write_json
from .errors import DkpError
from .predictions import Predictions, read as read_predictions

CURVES = Path("results/curves.csv")
METRICS = Path("results/metrics.json")
ANET_DIR = Path("results/anet")
DATA_REPORT = Path("results/data_report.json")
ANET_METHODS = ("dste", "teacher")
COLUMNS = ["name", "group", "figure", "method", "strategy", "ratio", "n_s", "n_t", "r_s", "r_t", "gflops",
           "mAP", "mAP_official", "top1", "videos_evaluated", "videos_skipped"]


def mean_gflops(cost, method: str, ns: np.ndarray, nt: np.ndarray) -> float:
    """Mean over videos of the per-video cost (fixed sampling: each video's own counts)."""
    pairs, inverse = np.unique(np.stack([ns, nt], axis=1), axis=0, return_inverse=True)
    per_pair = np.array([float(cost.gflops(method, int(a), int(b))) for a, b in pairs])
    return float(per_pair[np.asarray(inverse).reshape(-1)].mean())


def score(pred: Predictions) -> dict:
    """mAP, official mAP and top-1 (percent) of one configuration, with the excluded classes."""
    m = metrics.mean_ap(pred.scores, pred.labels)
    o = metrics.mean_ap_official(pred.scores, pred.labels)
    return {"mAP": 100 * m.value, "mAP_official": 100 * o.value,
            "top1": 100 * metrics.top1(pred.scores, pred.labels), "excluded": list(m.excluded)}


def skipped_videos(p: dict) -> dict[str, int]:
    """Evaluation-subset videos left out, by reason: from results/data_report.json when present,
    else counted from the manifest and the frame index."""
    if DATA_REPORT.exists():
        found = _skipped_from_report(json.loads(DATA_REPORT.read_text()), p["data"]["val_subset"])
        if found is not None:
            return found
    from . import framestore

    manifest = pd.DataFrame(framestore.load_manifest(p))
    val = manifest[manifest["subset"] == p["data"]["val_subset"]]
    out = {"missing": int((val["status"] == "missing").sum()),
           "unreadable": int((val["status"] == "unreadable").sum())}
    index = pd.DataFrame(framestore.read_index(p))
    ok_ids = set(val.loc[val["status"] == "ok", "id"].astype(str))
    bad_frames = index[(index["id"].astype(str).isin(ok_ids)) & (index["status"] != "ok")]
    not_extracted = ok_ids - set(index["id"].astype(str))
    out["unreadable"] += int(len(bad_frames))
    out["missing"] += len(not_extracted)
    return out


def _skipped_from_report(report: dict, subset: str) -> dict[str, int] | None:
    """Missing and unreadable videos of `subset` in dkp data-report's counts, or None if absent.

    missing = no file at ingest, or never extracted; unreadable = at ingest or at extraction.
    """
    node = report.get("subsets", {}).get(subset) if isinstance(report, dict) else None
    if not isinstance(node, dict):
        return None
    try:
        return {"missing": int(node.get("missing", 0)) + int(node.get("not_extracted", 0)),
                "unreadable": int(node.get("unreadable_ingest", 0)) + int(node.get("unreadable_extraction", 0))}
    except (TypeError, ValueError):
        return None


def load_all(p: dict) -> dict[int, dict[str, Predictions]]:
    """{seed: {configuration name: Predictions}} for every seed of run.seeds; every seed and
    configuration must cover the same videos in the same order."""
    preds = {seed: {c.name: read_predictions(layout.predictions_file(seed, c.group, c.name))
                    for c in configs_mod.build(p)} for seed in p["run"]["seeds"]}
    first = p["run"]["seeds"][0]
    ref = next(iter(preds[first].values()))
    for seed, by_name in preds.items():
        for name, pred in by_name.items():
            if not np.isfinite(pred.scores).all():
                raise DkpError(f"predictions of {name} (seed {seed}) hold non-finite scores; "
                               f"rerun `dkp sweep --seed {seed}`")
            if not np.array_equal(pred.video_ids, ref.video_ids):
                raise DkpError(f"predictions of {name} (seed {seed}) cover other videos than those of "
                               f"{next(iter(preds[first]))} (seed {first}); rerun `dkp sweep --seed {seed}`")
    return preds


def curves_table(p: dict, preds: dict[str, Predictions], cost, skipped: int) -> tuple[pd.DataFrame, dict]:
    rows, scores = [], {}
    for c in configs_mod.build(p):
        pred = preds[c.name]
        s = score(pred)
        s["gflops"] = mean_gflops(cost, c.method, pred.ns, pred.nt)
        scores[c.name] = s
        rows.append({
            "name": c.name, "group": c.group, "figure": c.figure, "method": c.method, "strategy": c.strategy,
            "ratio": c.ratio, "n_s": float(pred.ns.mean()), "n_t": float(pred.nt.mean()),
            "r_s": c.rs, "r_t": c.rt, "gflops": s["gflops"], "mAP": s["mAP"],
            "mAP_official": s["mAP_official"], "top1": s["top1"],
            "videos_evaluated": len(pred.video_ids), "videos_skipped": skipped})
    return pd.DataFrame(rows, columns=COLUMNS), scores


def metrics_summary(p: dict, scores: dict, n_videos: int, skipped: dict, class_names: list[str]) -> dict:
    ops = {}
    for name in p["evaluate"]["operating_points"]:
        s = scores[name]
        ops[name] = {k: round(s[k], 4) for k in ("mAP", "mAP_official", "top1")} | {"gflops": round(s["gflops"], 6)}
    excluded = sorted({i for s in scores.values() for i in s["excluded"]})
    return {"operating_points": ops,
            "videos": {"evaluated": n_videos, "skipped": sum(skipped.values()), **{f"skipped_{k}": v for k, v in
                                                                                   sorted(skipped.items())}},
            "classes": {"total": len(class_names), "excluded_from_mAP": len(excluded),
                        "excluded": [class_names[i] for i in excluded]}}


def run(p: dict, args) -> None:
    from . import framestore, runtime
    from .inference import Predictor

    first = p["run"]["seeds"][0]
    device = runtime.setup(p, first)
    preds = load_all(p)[first]  # single-seed curves from the first seed
    class_names = list(framestore.load_classes(p))
    n_classes = next(iter(preds.values())).scores.shape[1]
    if len(class_names) != n_classes:
        raise DkpError(f"predictions have {n_classes} classes but data/classes.txt lists {len(class_names)}; "
                       f"rerun the pipeline from `dkp data`")
    cost = Predictor.load(p, device, first).cost()
    skipped = skipped_videos(p)
    n_videos = len(next(iter(preds.values())).video_ids)
    table, scores = curves_table(p, preds, cost, sum(skipped.values()))
    write_csv(CURVES, table)
    write_json(METRICS, metrics_summary(p, scores, n_videos, skipped, class_names))
    with atomic_dir(ANET_DIR) as tmp:
        for c in configs_mod.build(p):
            if c.method in ANET_METHODS:
                pred = preds[c.name]
                doc = results_json(pred.video_ids, pred.scores, class_names)
                (tmp / f"{c.name}.json").write_text(json.dumps(doc, sort_keys=True) + "\n")
    print(f"evaluate: {len(table)} configurations, {n_videos} videos -> {CURVES}, {METRICS}, {ANET_DIR}/")
