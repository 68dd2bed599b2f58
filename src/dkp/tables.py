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
    "fed_as_named",
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
    c
    for c in CURVE_COLUMNS
    if c not in ("distinct_s", "distinct_t", "fed_as_named", "top1_lo", "top1_hi")
]
# a configuration is "fed as named" when at least this share of the evaluated videos (over the
# seeds) gets exactly the distinct n_s and n_t it names; curves.csv's fed_as_named holds the
# share, and a point below it is marked in the figures and the report
FED_AS_NAMED = 0.95
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
