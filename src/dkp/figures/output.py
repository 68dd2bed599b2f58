"""Figure style and atomic, byte-stable PNG + PDF output."""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; also fixes the renderer used to measure label extents

import matplotlib.pyplot as plt  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

COLUMN_WIDTH = 3.3  # in: one column of a two-column paper
FULL_WIDTH = 7.0  # in: both columns

# Sized for print at column width: 7 pt text is the smallest a caption-sized figure should use.
STYLE = {
    "font.size": 7,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.8,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "legend.frameon": True,
    "legend.framealpha": 0.9,
    "legend.borderpad": 0.3,
    "legend.handlelength": 2.2,
    "pdf.fonttype": 42,
    "svg.hashsalt": "dkp",
}

GFLOPS_LABEL = "GFLOPs per video (multiply-accumulates)"
MAP_LABEL = "mAP (%)"


@contextlib.contextmanager
def style():
    with plt.rc_context(STYLE):
        yield


def save(fig, stem: str | Path, dpi: int) -> list[Path]:
    """Write <stem>.png at dpi and <stem>.pdf atomically; close the figure. Same figure, same
    bytes."""
    stem = Path(stem)
    out = []
    for fmt, meta in (
        ("png", {"Software": "dkp figures (matplotlib)"}),
        ("pdf", {"Creator": "dkp figures", "Producer": None, "CreationDate": None}),
    ):
        target = stem.with_suffix(f".{fmt}")
        with atomic_path(target, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
        out.append(target)
    plt.close(fig)
    return out
