"""Columns of the result tables that evaluate writes and figures reads (docs/contracts.md)."""

from __future__ import annotations

# results/curves.csv: one row per sampling configuration, in this order
CURVE_COLUMNS = [
    "name",
    "group",
    "figure",
    "method",
    "strategy",
    "ratio",
    "n_s",
    "n_t",
    "n_s_nominal",
    "n_t_nominal",
    "distinct_s",
    "distinct_t",
    "r_s",
    "r_t",
    "gflops",
    "mAP",
    "mAP_lo",
    "mAP_hi",
    "mAP_seed_min",
    "mAP_seed_max",
    "seeds",
    "mAP_official",
    "top1",
    "top1_lo",
    "top1_hi",
    "videos_evaluated",
    "videos_skipped",
]
# what the figures need of it: the distinct-frame counts and the top-1 interval are shown
# where present
CURVE_REQUIRED = [
    c for c in CURVE_COLUMNS if c not in ("distinct_s", "distinct_t", "top1_lo", "top1_hi")
]
# the scores of each operating point in results/metrics.json (besides its gflops)
OPERATING_POINT_SCORES = (
    "mAP",
    "mAP_lo",
    "mAP_hi",
    "mAP_seed_min",
    "mAP_seed_max",
    "mAP_official",
    "top1",
)
