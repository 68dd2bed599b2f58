"""`dkp evaluate`: score every configuration's predictions over all seeds, with intervals over
videos and seeds.

Reads each seed's prediction files (layout.predictions_file) and the S-3 per-frame
files, and writes:
- results/curves.csv: one row per configuration (dkp.configs order): the seed-mean mAP,
  its interval over videos and seeds (below), the seed spread, GFLOPs (mean of the
  predictions' per-video `gflops`), frame counts fed and asked for;
- results/bootstrap.npz: the draws themselves (video weights, seed multipliers, per-seed points,
  replicates of the seed-averaged mAP with and without the seed part, per-seed S-3 gains), so
  `dkp figures` computes every claim's effect on the same resamples;
- results/metrics.json (DVC metrics): the operating points with their intervals, counts;
- results/anet/seed-<n>/<config>.json: official ActivityNet result files (DSTE, Teacher).

Each replicate draws the videos with replacement (the same draw for every configuration and
seed: differences are paired), each seed's AP replicates centred on its point, and adds the
seed part, a t-scaled contrast of the per-seed points (stats.seed_multipliers): the interval
carries the video and the seed variation, the seed part honest for the number of seeds run.

Needs no model and no torch: the sweep stores each video's cost in the predictions.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import configs as configs_mod
from . import layout, metrics, stats
from .anet_format import results_json
from .atomic import atomic_dir, atomic_path, write_csv, write_json
from .errors import DkpError
from .predictions import Predictions, s3_video_gains, save_npz
from .predictions import read as read_predictions
from .tables import CURVE_COLUMNS, OPERATING_POINT_SCORES

CURVES = layout.CURVES
METRICS = layout.METRICS
BOOTSTRAP = layout.BOOTSTRAP
ANET_DIR = layout.ANET
DATA_REPORT = layout.DATA_REPORT
ANET_METHODS = ("dste", "teacher")


def bootstrap_params(p: dict) -> tuple[int, int, float]:
    b = p["evaluate"]["bootstrap"]
    return int(b["resamples"]), int(b["seed"]), float(b["level"])


def skipped_videos(p: dict) -> dict[str, int]:
    """Evaluation-subset videos left out, by reason, from results/data_report.json."""
    if not DATA_REPORT.exists():
        raise DkpError(f"{DATA_REPORT} not found: run `dkp data-report` first")
    try:
        report = json.loads(DATA_REPORT.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DkpError(f"{DATA_REPORT}: not valid JSON ({exc})") from None
    found = _skipped_from_report(report, p["data"]["val_subset"])
    if found is None:
        raise DkpError(
            f"{DATA_REPORT} has no counts for subset {p['data']['val_subset']!r}: rerun "
            "`dkp data-report`"
        )
    return found


def _skipped_from_report(report: dict, subset: str) -> dict[str, int] | None:
    """Missing and unreadable videos of `subset` in dkp data-report's counts, or None if absent.

    missing = no file at ingest, or never extracted; unreadable = at ingest or at extraction.
    """
    node = report.get("subsets", {}).get(subset) if isinstance(report, dict) else None
    if not isinstance(node, dict):
        return None
    try:
        return {
            "missing": int(node.get("missing", 0)) + int(node.get("not_extracted", 0)),
            "unreadable": int(node.get("unreadable_ingest", 0))
            + int(node.get("unreadable_extraction", 0)),
        }
    except (TypeError, ValueError):
        return None


def load_all(p: dict) -> dict[int, dict[str, Predictions]]:
    """{seed: {configuration: predictions}}; every file must cover the same videos with the same
    labels."""
    out: dict[int, dict[str, Predictions]] = {}
    ref, ref_where = None, None
    for seed in [int(s) for s in p["run"]["seeds"]]:
        out[seed] = {}
        for c in configs_mod.build(p):
            path = layout.predictions_file(seed, c.group, c.name)
            pred = read_predictions(path)
            if not np.isfinite(pred.scores).all() or not np.isfinite(pred.gflops).all():
                raise DkpError(f"{path} holds non-finite scores or GFLOPs; rerun `dkp sweep`")
            if ref is None:
                ref, ref_where = pred, path
            elif not (
                np.array_equal(pred.video_ids, ref.video_ids)
                and np.array_equal(pred.labels, ref.labels)
            ):
                raise DkpError(
                    f"{path} covers other videos (or labels) than {ref_where}; rerun `dkp sweep`"
                )
            out[seed][c.name] = pred
    return out


def s3_gains(p: dict, video_ids: np.ndarray) -> np.ndarray:
    """(S, V) per seed and video: mean DSTE minus mean Student ground-truth probability over the
    S-3 configuration's frames; NaN for a video (or a seed) without frames."""
    name = p["sweep"]["s3_config"]
    group = configs_mod.by_name(p)[name].group
    col = {str(v): i for i, v in enumerate(video_ids)}
    seeds = [int(s) for s in p["run"]["seeds"]]
    gains = np.full((len(seeds), len(video_ids)), np.nan)
    for k, seed in enumerate(seeds):
        path = layout.s3_frames_file(seed, group, name)
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DkpError(f"{path}: not valid JSON ({exc})") from None
        videos = data.get("videos", []) if isinstance(data, dict) else data
        unknown = [v.get("id") for v in videos if str(v.get("id")) not in col]
        if unknown:
            raise DkpError(
                f"{path}: video {unknown[0]!r} is not among the evaluated videos; rerun `dkp sweep`"
            )
        for vid, gain in s3_video_gains(videos).items():
            gains[k, col[vid]] = gain
    return gains


def distinct_share(fed: list[np.ndarray], asked: list[np.ndarray]) -> float:
    """Frames fed over frames asked for, summed over the arrays (NaN when nothing was asked)."""
    total = float(sum(a.sum() for a in asked))
    return float(sum(f.sum() for f in fed)) / total if total > 0 else float("nan")


def fed_as_named(preds: list[Predictions]) -> float:
    """Share of videos (over the seeds' predictions) fed exactly the n_s and n_t the configuration
    names."""
    exact = [(q.ns == q.ns_nominal) & (q.nt == q.nt_nominal) for q in preds]
    return float(np.mean(np.concatenate(exact)))


def frame_columns(ps: list[Predictions]) -> dict:
    """curves.csv's frame counts of one configuration over the seeds' predictions: mean counts fed
    and asked for, distinct shares, the share of videos fed as named."""
    return {
        "n_s": float(np.mean([q.ns.mean() for q in ps])),
        "n_t": float(np.mean([q.nt.mean() for q in ps])),
        "n_s_nominal": float(np.mean([q.ns_nominal.mean() for q in ps])),
        "n_t_nominal": float(np.mean([q.nt_nominal.mean() for q in ps])),
        "distinct_s": distinct_share([q.ns for q in ps], [q.ns_nominal for q in ps]),
        "distinct_t": distinct_share([q.nt for q in ps], [q.nt_nominal for q in ps]),
        "fed_as_named": fed_as_named(ps),
    }


def score_seeds(ps: list[Predictions], draws: stats.Resamples) -> tuple[np.ndarray, np.ndarray]:
    """One configuration over the seeds: (3, S) mAP, official mAP and top-1 (percent), and
    (2, S, B) replicates of mAP and top-1 on the shared video resamples."""
    point, reps = np.zeros((3, len(ps))), np.zeros((2, len(ps), len(draws.weights)))
    weights = draws.weights.astype(np.float64)
    for s, pred in enumerate(ps):
        point[0, s] = 100 * metrics.mean_ap(pred.scores, pred.labels).value
        point[1, s] = 100 * metrics.mean_ap_official(pred.scores, pred.labels).value
        point[2, s] = 100 * metrics.top1(pred.scores, pred.labels)
        reps[0, s] = 100 * draws.mean_ap(pred.scores)
        correct = (pred.scores.argmax(axis=1) == pred.labels).astype(np.float64)
        reps[1, s] = 100 * (weights @ correct) / len(correct)
    return point, reps


def score_all(p: dict, preds: dict[int, dict[str, Predictions]], skipped: int):
    """(curves table, bootstrap arrays) over every seed (dkp.stats: videos and seeds)."""
    n_boot, boot_seed, level = bootstrap_params(p)
    seeds, cfgs = list(preds), configs_mod.build(p)
    ref = next(iter(preds[seeds[0]].values()))
    draws = stats.Resamples.draw(ref.labels, ref.scores.shape[1], n_boot, boot_seed)
    scored = [score_seeds([preds[seed][c.name] for seed in seeds], draws) for c in cfgs]
    point = np.stack([pt for pt, _ in scored], axis=-1)  # (3, S, K)
    reps = np.stack([r for _, r in scored], axis=-1)  # (2, S, B, K)
    # each seed's AP replicates centred on its point (stats.centred); top-1 is a plain mean of
    # the weights and needs no centring
    per_seed = np.stack([stats.centred(reps[0, s], point[0, s]) for s in range(len(seeds))])
    mult = stats.seed_multipliers(len(seeds), n_boot, boot_seed)
    video_reps = per_seed.mean(axis=0)
    map_reps = stats.with_seed_part(video_reps, point[0], mult)
    lo, hi = stats.interval(map_reps, level)
    t_lo, t_hi = stats.interval(stats.with_seed_part(reps[1].mean(axis=0), point[2], mult), level)
    rows = [
        {
            "name": c.name,
            "group": c.group,
            "figure": c.figure,
            "method": c.method,
            "strategy": c.strategy,
            "ratio": c.ratio,
            **frame_columns([preds[seed][c.name] for seed in seeds]),
            "r_s": c.rs,
            "r_t": c.rt,
            "gflops": float(np.mean([preds[seed][c.name].gflops.mean() for seed in seeds])),
            "mAP": float(point[0, :, k].mean()),
            "mAP_lo": float(lo[k]),
            "mAP_hi": float(hi[k]),
            "mAP_seed_min": float(point[0, :, k].min()),
            "mAP_seed_max": float(point[0, :, k].max()),
            "seeds": len(seeds),
            "mAP_official": float(point[1, :, k].mean()),
            "top1": float(point[2, :, k].mean()),
            "top1_lo": float(t_lo[k]),
            "top1_hi": float(t_hi[k]),
            "videos_evaluated": len(ref.video_ids),
            "videos_skipped": skipped,
        }
        for k, c in enumerate(cfgs)
    ]
    table = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    arrays = {
        "names": np.array([c.name for c in cfgs], dtype=str),
        "groups": np.array([c.group for c in cfgs], dtype=str),
        "gflops": table["gflops"].to_numpy(np.float64),
        "seeds": np.array(seeds, dtype=np.int64),
        "map_seeds": point[0],
        "map_replicates": map_reps,
        "map_video_replicates": video_reps,
        "weights": draws.weights.astype(np.uint16),
        "seed_multipliers": mult,
        "video_ids": np.asarray(ref.video_ids, dtype=str),
        "level": np.float64(level),
        "s3_gain": s3_gains(p, ref.video_ids),
    }
    return table, arrays


def _r(x: float, digits: int = 4):
    return None if not np.isfinite(x) else round(float(x), digits)


def metrics_summary(
    p: dict,
    table: pd.DataFrame,
    n_videos: int,
    skipped: dict,
    class_names: list[str],
    excluded: list[int],
) -> dict:
    n_boot, boot_seed, level = bootstrap_params(p)
    by_name = table.set_index("name")
    ops = {}
    for name in p["evaluate"]["operating_points"]:
        r = by_name.loc[name]
        ops[name] = {k: _r(r[k]) for k in OPERATING_POINT_SCORES} | {"gflops": _r(r["gflops"], 6)}
    half = (table["mAP_hi"] - table["mAP_lo"]) / 2
    return {
        "operating_points": ops,
        "intervals": {
            "level": level,
            "resamples": n_boot,
            "seeds": int(table["seeds"].iloc[0]),
            "median_half_width": _r(float(half.median())),
            "max_half_width": _r(float(half.max())),
        },
        "videos": {
            "evaluated": n_videos,
            "skipped": sum(skipped.values()),
            **{f"skipped_{k}": v for k, v in sorted(skipped.items())},
        },
        "classes": {
            "total": len(class_names),
            "excluded_from_mAP": len(excluded),
            "excluded": [class_names[i] for i in excluded],
        },
    }


def run(p: dict, args) -> None:
    preds = load_all(p)
    if not layout.CLASSES.exists():
        raise DkpError(f"{layout.CLASSES} not found: run `dkp data` first")
    class_names = layout.CLASSES.read_text(encoding="utf-8").splitlines()
    ref = next(iter(next(iter(preds.values())).values()))
    if len(class_names) != ref.scores.shape[1]:
        raise DkpError(
            f"predictions have {ref.scores.shape[1]} classes but {layout.CLASSES} lists "
            f"{len(class_names)}; rerun the pipeline from `dkp data`"
        )
    skipped = skipped_videos(p)
    n_videos = len(ref.video_ids)
    table, arrays = score_all(p, preds, sum(skipped.values()))
    excluded = sorted(set(range(len(class_names))) - set(np.unique(ref.labels).tolist()))
    write_csv(CURVES, table)
    with atomic_path(BOOTSTRAP, suffix=".npz") as tmp:
        save_npz(tmp, arrays)
    write_json(METRICS, metrics_summary(p, table, n_videos, skipped, class_names, excluded))
    with atomic_dir(ANET_DIR) as tmp:
        for seed, by_config in preds.items():
            (tmp / layout.seed_dir(seed)).mkdir()
            for c in configs_mod.build(p):
                if c.method in ANET_METHODS:
                    pred = by_config[c.name]
                    doc = results_json(pred.video_ids, pred.scores, class_names)
                    (tmp / layout.seed_dir(seed) / f"{c.name}.json").write_text(
                        json.dumps(doc, sort_keys=True) + "\n"
                    )
    print(
        f"evaluate: {len(table)} configurations x {len(preds)} seeds, {n_videos} videos, "
        f"{arrays['weights'].shape[0]} bootstrap resamples -> {CURVES}, {BOOTSTRAP}, {METRICS}, "
        f"{ANET_DIR}/"
    )
