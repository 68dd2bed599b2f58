"""Markdown for the results report: fixed number formats, tables, the every-configuration table."""

from __future__ import annotations

import math

import pandas as pd

from ..tables import FED_AS_NAMED

_TABLE_COLUMNS = [
    ("name", "configuration"),
    ("method", "method"),
    ("strategy", "sampling"),
    ("ratio", "n_s/n_t"),
    ("n_s_nominal", "n_s"),
    ("n_t_nominal", "n_t"),
    ("distinct", "distinct frames (s/t)"),
    ("fed_as_named", "videos fed as named"),
    ("r_s", "r_s (s)"),
    ("r_t", "r_t (s)"),
    ("gflops", "GFLOPs"),
    ("mAP", "mAP (%) [95% interval]"),
    ("seed_range", "seeds (min-max)"),
    ("mAP_official", "mAP official (%)"),
    ("top1", "top-1 (%)"),
    ("videos_evaluated", "videos"),
    ("videos_skipped", "skipped"),
]
_DIGITS = {"gflops": 4, "mAP": 2, "mAP_official": 2, "top1": 2}


def num(v, digits: int | None = None) -> str:
    """Fixed formats: the same float prints the same way on every run."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if digits is not None:
        return f"{v:.{digits}f}"
    return f"{round(float(v), 3):g}"


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def config_table(rows: pd.DataFrame) -> list[str]:
    """Every configuration of curves.csv, by figure and curve, cheapest first."""
    order = {"s1": 0, "s2": 1, "baseline": 2}
    df = rows.assign(_f=rows["figure"].map(order).fillna(3)).sort_values(
        ["_f", "group", "gflops", "name"], kind="stable"
    )
    body = [[_cell(r, c) for c, _ in _TABLE_COLUMNS] for r in df.itertuples()]
    return md_table([h for _, h in _TABLE_COLUMNS], body)


def _share(v) -> str:
    return "" if v is None or pd.isna(v) else f"{100 * float(v):.0f}%"


def _cell(r, c: str) -> str:
    """One table cell: the mAP with its interval, the seed range, the distinct-frame shares, or the
    value."""
    if c in ("name", "method", "strategy"):
        return str(getattr(r, c))
    if c == "mAP":
        return f"{r.mAP:.2f} [{r.mAP_lo:.2f}, {r.mAP_hi:.2f}]"
    if c == "seed_range":
        return f"{r.mAP_seed_min:.2f}-{r.mAP_seed_max:.2f} ({int(r.seeds)})"
    if c == "distinct":
        s, t = _share(getattr(r, "distinct_s", None)), _share(getattr(r, "distinct_t", None))
        return f"{s or '-'} / {t or '-'}"
    if c == "fed_as_named":
        v = getattr(r, "fed_as_named", None)
        if v is None or pd.isna(v):
            return ""
        # below the bar: the point sits under a label it does not meet (marked in the figures)
        return _share(v) + ("" if float(v) >= FED_AS_NAMED else " (short)")
    v = getattr(r, c)
    if isinstance(v, float) and c in ("n_s_nominal", "n_t_nominal") and v == 0:
        return ""
    return num(v if not pd.isna(v) else None, _DIGITS.get(c))


def scalar_items(obj, prefix=""):
    """(dotted key, formatted value) of every scalar of a JSON object; a list of scalars is one
    value."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from scalar_items(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and not all(isinstance(x, (dict, list)) for x in obj):
        yield prefix, ", ".join(num(x) for x in obj)
    elif isinstance(obj, list):
        for i, x in enumerate(obj):
            yield from scalar_items(x, f"{prefix}[{i}]")
    else:
        yield prefix, num(obj)


def mapping_table(obj, first: tuple[str, ...] = ()) -> list[str]:
    """A JSON object as a table: a row per key of a mapping of flat mappings, else key/value pairs.

    Columns: those named in `first` (in that order), then the rest sorted.
    """
    if (
        isinstance(obj, dict)
        and obj
        and all(isinstance(v, dict) for v in obj.values())
        and all(not isinstance(x, (dict, list)) for v in obj.values() for x in v.values())
    ):
        present = {c for v in obj.values() for c in v}
        cols = [c for c in first if c in present] + sorted(present - set(first), key=str)
        return md_table(
            [""] + [str(c) for c in cols],
            [[str(k)] + [num(obj[k].get(c)) for c in cols] for k in sorted(obj, key=str)],
        )
    return md_table(["key", "value"], [[k, v] for k, v in scalar_items(obj)])
