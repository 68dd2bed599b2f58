"""Figures S-1 and S-2: seed-mean mAP against GFLOPs per video, with the intervals of the bootstrap
over videos and seeds (error bars), from results/curves.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import configs
from ..errors import DkpError
from ..tables import CURVE_REQUIRED, FED_AS_NAMED
from . import labels, output

COLUMNS = CURVE_REQUIRED
BOOTSTRAP_FIELDS = (
    "names",
    "groups",
    "gflops",
    "seeds",
    "map_seeds",
    "map_replicates",
    "map_video_replicates",
    "weights",
    "video_ids",
    "level",
    "s3_gain",
    "seed_multipliers",
)
HEIGHT = 2.45  # in, S-1 and S-2 at column width

S2_STYLE = {
    "dste_nt5": ("nt-5", "o", "C0"),
    "dste_ns20": ("ns-20", "s", "C3"),
    "teacher": ("Teacher", "^", "C7"),
}
_S1_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def load(path: str | Path) -> pd.DataFrame:
    """Read curves.csv and check its columns; DkpError with one line otherwise."""
    path = Path(path)
    if not path.exists():
        raise DkpError(f"{path} not found: run `dkp evaluate` first")
    try:
        rows = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DkpError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise DkpError(f"{path}: missing columns {missing} (expected {COLUMNS})")
    for col in ("gflops", "mAP", "mAP_lo", "mAP_hi"):
        if not pd.api.types.is_numeric_dtype(rows[col]):
            raise DkpError(f"{path}: column {col!r} must be numeric")
    return rows.sort_values(["figure", "group", "gflops", "name"], kind="stable").reset_index(
        drop=True
    )


def load_bootstrap(path: str | Path, rows: pd.DataFrame) -> dict:
    """results/bootstrap.npz as a dict of arrays; it must cover every configuration of
    curves.csv."""
    path = Path(path)
    if not path.exists():
        raise DkpError(f"{path} not found: run `dkp evaluate` first")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DkpError(f"{path}: unreadable ({exc})") from None
    missing = [f for f in BOOTSTRAP_FIELDS if f not in arrays]
    if missing:
        raise DkpError(f"{path}: missing {missing}; rerun `dkp evaluate`")
    if sorted(map(str, arrays["names"])) != sorted(map(str, rows["name"])):
        raise DkpError(
            f"{path} and results/curves.csv list different configurations: rerun `dkp evaluate`"
        )
    return arrays


def _errorbar(ax, pts: pd.DataFrame, color: str) -> None:
    """The interval of each point's seed-mean mAP, as a vertical bar."""
    m = pts["mAP"].to_numpy(float)
    yerr = np.vstack([m - pts["mAP_lo"].to_numpy(float), pts["mAP_hi"].to_numpy(float) - m])
    ax.errorbar(
        pts["gflops"],
        m,
        yerr=yerr,
        fmt="none",
        ecolor=color,
        elinewidth=0.6,
        capsize=1.5,
        capthick=0.6,
        alpha=0.8,
        zorder=1,
    )


def _mark_short(ax, pts: pd.DataFrame) -> None:
    """A red cross on every point fed fewer distinct frames than it names in more than 5 % of the
    videos (curves.csv fed_as_named < FED_AS_NAMED): its label does not say what was computed."""
    if "fed_as_named" not in pts:
        return
    short = pts[pts["fed_as_named"] < FED_AS_NAMED]
    if not short.empty:
        ax.scatter(
            short["gflops"],
            short["mAP"],
            marker="x",
            color="red",
            s=18,
            linewidths=0.8,
            zorder=4,
            label=f"fed as named in < {100 * FED_AS_NAMED:g} % of videos",
        )


def check_groups(rows: pd.DataFrame, p: dict) -> None:
    """The figures need every S-1/S-2 curve and the Teacher declared by sweep params; a stale CSV
    fails here."""
    want = sorted(
        {c.group for c in configs.build(p) if c.figure in ("s1", "s2") or c.group == "teacher"}
    )
    missing = [g for g in want if g not in set(rows["group"])]
    if missing:
        raise DkpError(
            f"results/curves.csv lacks the curves {missing} that params.yaml's sweep declares: "
            "rerun `dkp sweep` and `dkp evaluate`"
        )


def s1_label(group: str) -> str:
    """dste_adaptive-4 -> Adaptive-4."""
    return group.split("_", 1)[-1].capitalize()


def _s1_groups(rows: pd.DataFrame) -> list[str]:
    s1 = rows[rows["figure"] == "s1"].drop_duplicates("group")
    order = s1.assign(o=(s1["strategy"] != "adaptive").astype(int)).sort_values(
        ["o", "ratio", "group"]
    )
    return list(order["group"])


def _points(rows: pd.DataFrame, group: str) -> pd.DataFrame:
    """A curve's points joined in GFLOPs order."""
    return rows[rows["group"] == group].sort_values(["gflops", "name"], kind="stable")


def _axes(width: float, height: float):
    import matplotlib.pyplot as plt

    # constrained layout fits tick labels of any width; the pixel size stays figsize x dpi (no tight
    # bbox)
    fig = plt.figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03)
    ax = fig.add_subplot()
    ax.set_xlabel(output.GFLOPS_LABEL)
    ax.set_ylabel(output.MAP_LABEL)
    ax.grid(True)
    return fig, ax


def _freeze_layout(fig) -> None:
    """Run the layout once and keep it: labels are placed in display space after this."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def _relayout(fig) -> None:
    """Lay the figure out again (a legend moved outside the axes needs room), then freeze it."""
    fig.set_layout_engine("constrained")
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03)
    _freeze_layout(fig)


def _data_polylines(pts: pd.DataFrame) -> list:
    """A curve's line and its bars, as (xs, ys) polylines: what legends and labels must not hide."""
    g, m = pts["gflops"].to_numpy(float), pts["mAP"].to_numpy(float)
    return [(g, m)] + [([r.gflops, r.gflops], [r.mAP_lo, r.mAP_hi]) for r in pts.itertuples()]


def _pad_limits(ax, xs, ys, frac=(0.06, 0.1)) -> None:
    """Room around the data for the markers and their labels."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    xr = max(xs.max() - xs.min(), 1e-9)
    yr = max(ys.max() - ys.min(), 1.0)
    ax.set_xlim(xs.min() - frac[0] * xr, xs.max() + frac[0] * xr)
    ax.set_ylim(ys.min() - frac[1] * yr, ys.max() + frac[1] * yr)


def render_s1(rows: pd.DataFrame, stem: str | Path, dpi: int) -> list[Path]:
    """Figure S-1 written as <stem>.png and .pdf."""
    with output.style():
        return output.save(figure_s1(rows), stem, dpi)


def figure_s1(rows: pd.DataFrame):
    """Adaptive-r and Fixed-r DSTE curves; one marker per curve; dashed = fixed sampling. Returns
    the laid-out figure (call inside output.style())."""
    groups = _s1_groups(rows)
    if not groups:
        raise DkpError("results/curves.csv has no S-1 rows (figure == 's1')")
    fig, ax = _axes(output.COLUMN_WIDTH, HEIGHT)
    lines, xy = [], []
    for i, g in enumerate(groups):
        pts = _points(rows, g)
        lines += _data_polylines(pts)
        xy += list(zip(pts["gflops"], pts["mAP"]))
        fixed = pts["strategy"].iloc[0] == "fixed"
        ax.plot(
            pts["gflops"],
            pts["mAP"],
            marker=_S1_MARKERS[i % len(_S1_MARKERS)],
            color=f"C{i}",
            linestyle="--" if fixed else "-",
            label=s1_label(g),
            markerfacecolor="white" if fixed else None,
            zorder=2,
        )
        _errorbar(ax, pts, f"C{i}")
    s1 = rows[rows["group"].isin(groups)]
    _mark_short(ax, s1)
    _pad_limits(ax, s1["gflops"], pd.concat([s1["mAP_lo"], s1["mAP_hi"]]), frac=(0.04, 0.08))
    _freeze_layout(fig)
    labels.place_legend(
        ax,
        lines,
        xy,
        output.STYLE["lines.markersize"],
        lambda: _relayout(fig),
        title=_bars_title(rows),
        title_fontsize=5.5,
        ncol_outside=2,
    )
    return fig


def _count(rows: pd.DataFrame, col: str) -> str:
    lo, hi = int(rows[col].min()), int(rows[col].max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def bars_text(rows: pd.DataFrame) -> str:
    """What the error bars are, with the numbers of videos and seeds read from curves.csv."""
    seeds = _count(rows, "seeds")
    return (
        f"95 % intervals over {_count(rows, 'videos_evaluated')} validation videos and {seeds} "
        f"seed{'s' if seeds != '1' else ''} (bootstrap over videos and seeds)"
    )


def _bars_title(rows: pd.DataFrame) -> str:
    """What the points and bars are, as the legend's title."""
    seeds = _count(rows, "seeds")
    return (
        f"mean of {seeds} seed{'s' if seeds != '1' else ''}; bars: 95 % intervals over\n"
        f"{_count(rows, 'videos_evaluated')} videos and {seeds} seed{'s' if seeds != '1' else ''}"
        " (bootstrap over both)"
    )


def point_label(row) -> str:
    """Nominal n_s/n_t of a point; a network that does not run counts 0 frames (Teacher alone:
    0/n_t)."""

    def num(v):
        return "0" if pd.isna(v) else f"{float(v):.3g}"

    return f"{num(row.n_s_nominal)}/{num(row.n_t_nominal)}"


def render_s2(rows: pd.DataFrame, stem: str | Path, dpi: int) -> list[Path]:
    """Figure S-2 written as <stem>.png and .pdf."""
    with output.style():
        return output.save(figure_s2(rows), stem, dpi)


def figure_s2(rows: pd.DataFrame):
    """nt-5, ns-20 and Teacher alone; each point labelled n_s/n_t (labels.place). Returns the
    laid-out figure (call inside output.style())."""
    fig, ax = _axes(output.COLUMN_WIDTH, HEIGHT)
    points, lines = [], []
    for g, (name, marker, color) in S2_STYLE.items():
        pts = _points(rows, g)
        if pts.empty:
            continue
        ax.plot(pts["gflops"], pts["mAP"], marker=marker, color=color, label=name, zorder=2)
        _errorbar(ax, pts, color)
        lines += _data_polylines(pts)
        points += [(float(r.gflops), float(r.mAP), point_label(r), color) for r in pts.itertuples()]
    if not points:
        raise DkpError("results/curves.csv has none of the S-2 curves " + ", ".join(S2_STYLE))
    shown = rows[rows["group"].isin(list(S2_STYLE))]
    _mark_short(ax, shown)
    _pad_limits(
        ax,
        [x for x, *_ in points],
        pd.concat([shown["mAP_lo"], shown["mAP_hi"]]),
        frac=(0.08, 0.14),
    )
    _freeze_layout(fig)
    legend = labels.place_legend(
        ax,
        lines,
        [(x, y) for x, y, *_ in points],
        output.STYLE["lines.markersize"],
        lambda: _relayout(fig),
        title="labels: $n_s/n_t$; " + _bars_title(rows),
        title_fontsize=5.5,
        ncol_outside=3,
    )
    renderer = fig.canvas.get_renderer()
    avoid = [legend.get_window_extent(renderer).padded(2)]
    labels.place(
        ax, points, lines, fontsize=5.5, marker_pt=output.STYLE["lines.markersize"], avoid=avoid
    )
    return fig
