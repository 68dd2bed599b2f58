"""results/README.md: the generated results report (deterministic: same inputs, same bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..errors import DkpError
from ..tables import OPERATING_POINT_SCORES
from .curves import bars_text
from .markdown import config_table, mapping_table, md_table, num, scalar_items
from .s3 import rule_text as s3_rule
from .verdicts import Draws, Verdict, fmt_effect

NA = "not available"


def metrics_section(metrics) -> list[str]:
    """results/metrics.json: the operating points as a table, then video and class counts."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("operating_points"), dict):
        return mapping_table(metrics)
    out = mapping_table(
        metrics["operating_points"],
        ("gflops", *OPERATING_POINT_SCORES),
    ) + [""]
    rest = {k: v for k, v in metrics.items() if k != "operating_points"}
    out += [f"- {k}: {v}" for k, v in scalar_items(rest)]
    return out


DATA_COLUMNS = (
    "videos",
    "ok",
    "missing",
    "unreadable_ingest",
    "unreadable_extraction",
    "not_extracted",
)
SKIPPED_SHOWN = 20  # skipped videos listed by id; the rest are counted


def data_section(data_report) -> list[str]:
    """results/data_report.json: videos per subset and status, dropped annotation rows, skipped
    videos."""
    if not isinstance(data_report, dict) or not isinstance(data_report.get("subsets"), dict):
        return mapping_table(data_report)
    out = [
        "Videos per subset (ok = ingested and extracted; missing; unreadable at ingest or "
        "extraction):",
        "",
        *mapping_table(data_report["subsets"], DATA_COLUMNS),
        "",
    ]
    dropped = data_report.get("dropped_rows") or {}
    out.append(
        "Annotation rows dropped at ingest: "
        + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) if dropped else "none")
        + "."
    )
    skipped = data_report.get("skipped") or []
    if skipped:
        out += ["", f"Skipped videos ({len(skipped)}):", ""]
        out += [
            f"- `{s.get('id')}` ({s.get('subset')}, {s.get('stage')}): {s.get('reason')}"
            for s in skipped[:SKIPPED_SHOWN]
        ]
        if len(skipped) > SKIPPED_SHOWN:
            out.append(
                f"- ... and {len(skipped) - SKIPPED_SHOWN} more (see `results/data_report.json`)"
            )
    else:
        out.append("No video was skipped.")
    return out


def _read_json(path: Path):
    """A results JSON the report quotes, or None when the file does not exist; a corrupt file
    stops the stage with one line (the report would otherwise call it "not available")."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DkpError(f"{path}: not valid JSON ({exc}); rerun the stage that writes it") from None


def _params_section(p: dict) -> list[str]:
    d, f = p["data"], p["frames"]
    lines = [
        f"- data: source `{d['source']}`, annotations `{d['annotations']}`, videos "
        f"`{d['videos']}`, evaluated subset `{d['val_subset']}`, cap per subset "
        f"{num(d['max_videos_per_subset']) or 'none'}"
    ]
    if d["source"] == "synthetic":
        s = d["synthetic"]
        tune = (
            f", {s['tune_per_class']} of the tuning split `{d['tune_subset']}` (scored by the "
            "training logs, never evaluated)"
            if d["tune_subset"]
            else ""
        )
        lines.append(
            f"- synthetic data: {s['num_classes']} classes; per class {s['train_per_class']} "
            f"training and {s['val_per_class']} validation videos{tune}; ActivityNet v1.3-shaped "
            f"lengths x {s['time_scale']:g}, {s['size']} px at {s['fps']:g} fps, seed {s['seed']}"
        )
    lines.append(
        f"- frames: extracted at {f['fps']:g} fps, short side {f['size']} px, centre crop "
        f"{f['crop'] if f['crop'] is not None else 'none'}"
    )
    for net in ("teacher", "student"):
        b = p[net]
        lines.append(
            f"- {net}: {b['arch']}, width x{b['width']:g}, input {b['input_size']} px, "
            f"pretrained {b['pretrained'] or 'no (trained from scratch)'}; "
            f"{p['train'][net]['epochs']} epochs"
        )
    k = p["dkp"]
    lines.append(
        f"- DKP: {k['heads']} heads, dimension {k['dim']}, position encoding {k['pos_encoding']}, "
        f"teacher frame weight {k['teacher_frame_weight']:g}"
    )
    fp = p["figures"]
    lines.append(
        f"- claim rules: low GFLOPs = lowest {fp['low_fraction']:g} of a figure's GFLOPs range; "
        f"claim 3 threshold at {fp['similar_from']:g} of the GFLOPs range all S-1 curves share, "
        f"equivalence margin {fp['similar_margin']:g} mAP points; S-3 configuration "
        f"`{p['sweep']['s3_config']}`; seeds {p['run']['seeds']}"
    )
    b = p["evaluate"]["bootstrap"]
    lines.append(
        f"- intervals: {b['resamples']} bootstrap resamples of the validation videos (generator "
        f"seed {b['seed']}), {100 * b['level']:g} % percentile intervals"
    )
    return lines


def _seeds_text(draws: Draws) -> str:
    n = len(draws.seeds)
    ids = f" ({', '.join(str(s) for s in draws.seed_ids)})" if draws.seed_ids else ""
    return f"{n} seed{'s' if n != 1 else ''}{ids}"


def intervals_section(rows: pd.DataFrame, draws: Draws | None, margin: float) -> list[str]:
    """How to read the intervals: what was resampled, seeds, videos, pairing; the measured
    widths."""
    half = (rows["mAP_hi"] - rows["mAP_lo"]) / 2
    n_boot = 0 if draws is None else len(draws.boot)
    seeds = "the seeds" if draws is None else _seeds_text(draws)
    level = 95 if draws is None else round(100 * draws.level)
    seed_part = (
        "adds the seed part: a draw of the t distribution with S - 1 degrees of freedom times the "
        "seeds' standard deviation over sqrt(S), the honest width of a mean over S seeds (with "
        "3 seeds its 95 % quantile is 4.3 standard errors)"
        if draws is None or len(draws.seeds) > 1
        else "has no seed part: one seed carries no seed variation to measure, so the interval "
        "covers the videos only"
    )
    return [
        f"- Every mAP is the mean over {seeds} of the mAP of each seed's models. Its interval [lo, "
        f"hi] is a {level} % percentile interval of {n_boot} replicates. Each replicate draws the "
        f"{num(rows['videos_evaluated'].max())} validation videos with replacement, scores "
        "every seed on them (a video drawn k times counts as k videos, ranked one after another), "
        "centres each seed's replicates on its own mAP, averages over the seeds and "
        f"{seed_part}. It shows how much the number would move on another draw of validation "
        "videos of the same kind and another set of seeds.",
        "- Paired: every configuration and every seed is scored on the same resamples, so a "
        "difference between two curves is computed inside each resample. Its interval is narrower "
        "than the two curves' intervals suggest; do not judge a difference by whether two error "
        "bars overlap.",
        f"- Measured here: the half-width of a curve point's interval is {half.median():.2f} mAP "
        f"points in the median configuration (largest {half.max():.2f}). Claim 3's equivalence "
        f"margin is {margin:g} points.",
        "- Verdicts (**holds**, **fails**, **inconclusive**) follow the rule in docs/method.md, "
        "section 11. An inconclusive effect says which way its estimate and its seeds point, and "
        "what would settle it: the validation videos needed at this number of seeds (only the "
        "video part of the width shrinks with more videos; the seed part stays), or the seeds "
        "needed when no number of videos is enough.",
    ]


def _effects_cell(v: Verdict) -> str:
    unit, digits = (v.unit, 3) if v.unit == "probability" else (v.unit, 2)
    return "; ".join(f"{e.label.split(' (')[0]}: {fmt_effect(e, unit, digits)}" for e in v.effects)


HEADER = [
    "# Results: Efficient Action Recognition via Dynamic Knowledge Propagation (supplementary)",
    "",
    "Generated by `dkp figures` from `results/curves.csv`, the S-3 predictions and the data "
    "report; do not edit by hand. GFLOPs count multiply-accumulates per video, averaged over "
    "the evaluated videos.",
    "",
    "## Regenerate",
    "",
    "```bash",
    "make repro             # fresh machine: venv, install, snakemake --cores 2, dvc commit",
    "dvc repro              # the DVC pipeline (stages in dvc.yaml), one stage at a time",
    "snakemake --cores 2    # the same pipeline through Snakemake (jobs side by side)",
    "dkp figures            # this report and the figures alone, from existing results",
    "```",
    "",
]


def claims_section(verdicts: list[Verdict]) -> list[str]:
    """The claims' table, then each verdict's evidence."""
    return [
        "## Claims of the supplementary, checked on this run",
        "",
        *md_table(
            ["#", "claim", "verdict", "effect [95% interval], seeds on the claimed side"],
            [[str(v.number), v.claim, f"**{v.status}**", _effects_cell(v)] for v in verdicts],
        ),
        "",
        *(f"{v.number}. **{v.status}**: {v.evidence}" for v in verdicts),
    ]


def figures_section(p: dict, rows: pd.DataFrame, s3_ids: list[str]) -> list[str]:
    return [
        "## Figures",
        "",
        "![Figure S-1](figures/s1.png)",
        "",
        "Figure S-1: seed-mean mAP against GFLOPs of DSTE under adaptive and fixed sampling, ratio "
        f"n_s/n_t; bars: {bars_text(rows)} (`figures/s1.pdf`).",
        "",
        "![Figure S-2](figures/s2.png)",
        "",
        "Figure S-2: nt-5, ns-20 and Teacher alone; points labelled with the nominal n_s/n_t; "
        f"bars: {bars_text(rows)} (`figures/s2.pdf`).",
        "",
        "![Figure S-3](figures/s3.png)",
        "",
        f"Figure S-3: videos {', '.join(f'`{i}`' for i in s3_ids)}: input frames and the per-frame "
        "probability of the ground-truth class from Student and DSTE; labelled activity shaded "
        f"(`figures/s3.pdf`). Chosen {s3_rule(p)}.",
    ]


def data_counts_section(rows: pd.DataFrame, data_report) -> list[str]:
    ev, sk = rows["videos_evaluated"], rows["videos_skipped"]
    out = [
        "## Data",
        "",
        f"Videos evaluated per configuration: {num(ev.min())}"
        + ("" if ev.min() == ev.max() else f" to {num(ev.max())}")
        + f"; skipped: {num(sk.min())}"
        + ("" if sk.min() == sk.max() else f" to {num(sk.max())}")
        + ".",
        "",
    ]
    if data_report is not None:
        return out + ["From `results/data_report.json`.", "", *data_section(data_report), ""]
    return out + [
        f"`results/data_report.json` (videos per subset: ok, missing, unreadable): {NA}.",
        "",
    ]


def render(
    p: dict,
    rows: pd.DataFrame,
    verdicts: list[Verdict],
    s3_ids: list[str],
    data_report=None,
    metrics=None,
    draws: Draws | None = None,
) -> str:
    """The report's Markdown text."""
    headline = (
        ["## Headline operating points (`results/metrics.json`)", "", *metrics_section(metrics)]
        if metrics is not None
        else ["## Headline operating points", "", f"`results/metrics.json`: {NA}."]
    )
    out = [
        *HEADER,
        *claims_section(verdicts),
        "",
        "### How to read the intervals",
        "",
        *intervals_section(rows, draws, p["figures"]["similar_margin"]),
        "",
        *figures_section(p, rows, s3_ids),
        "",
        "## Every configuration",
        "",
        *config_table(rows),
        "",
        *headline,
        "",
        *data_counts_section(rows, data_report),
        "## Parameters that matter (`params.yaml`)",
        "",
        *_params_section(p),
        "",
    ]
    return "\n".join(out)


def write(
    p: dict,
    rows: pd.DataFrame,
    verdicts: list[Verdict],
    s3_ids: list[str],
    target: str | Path,
    results: str | Path = "results",
    draws: Draws | None = None,
) -> Path:
    """Render and write the report atomically, reading data_report.json and metrics.json when
    present."""
    results = Path(results)
    text = render(
        p,
        rows,
        verdicts,
        s3_ids,
        _read_json(results / "data_report.json"),
        _read_json(results / "metrics.json"),
        draws,
    )
    write_text(target, text)
    return Path(target)
