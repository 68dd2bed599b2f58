"""Every sampling configuration of the supplementary, declared from params['sweep'].

A configuration is a method (dste, dkp, teacher, student, student-kd) with a
sampling strategy and frame counts or intervals. Names are stable and used in
file names and tables; configurations are grouped (one group = one curve) so
Snakemake can fan the sweep out per group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import ParamError

METHODS = ("dste", "dkp", "teacher", "student", "student-kd")


@dataclass(frozen=True)
class Config:
    name: str  # e.g. dste_adaptive-4_nt5, dste_fixed-8_rt20, teacher_nt5
    group: str  # the curve it belongs to, e.g. dste_adaptive-4, teacher
    figure: str  # s1 | s2 | baseline
    method: str  # one of METHODS
    strategy: str  # adaptive | fixed
    ratio: float | None  # n_s / n_t, None where one network runs alone
    ns: int | None  # student frames (adaptive), None for fixed or teacher-only
    nt: int | None  # teacher frames (adaptive), None for fixed or student-only
    rs: float | None  # fixed: r_t / ratio, the mean student interval (n_s = ratio * n_t per video)
    rt: float | None  # teacher interval in seconds (fixed)

    def as_dict(self) -> dict:
        return asdict(self)


def _num(x: float) -> str:
    """20.0 -> '20', 7.5 -> '7.5': stable, file-name-safe."""
    return f"{x:g}"


def _adaptive(name, group, figure, method, ratio=None, ns=None, nt=None) -> Config:
    return Config(name, group, figure, method, "adaptive", ratio, ns, nt, None, None)


def build(p: dict) -> list[Config]:
    """All configurations, in a fixed order (figure, group, then cost)."""
    s1, s2, b = p["sweep"]["s1"], p["sweep"]["s2"], p["sweep"]["baselines"]
    out: list[Config] = []
    for ratio in s1["ratios"]:
        g = f"dste_adaptive-{ratio}"
        out += [
            _adaptive(f"{g}_nt{nt}", g, "s1", "dste", ratio, ratio * nt, nt)
            for nt in s1["adaptive_nt"]
        ]
    for ratio in s1["ratios"]:
        g = f"dste_fixed-{ratio}"
        out += [
            Config(f"{g}_rt{_num(rt)}", g, "s1", "dste", "fixed", ratio, None, None, rt / ratio, rt)
            for rt in sorted(s1["fixed_rt"], reverse=True)
        ]
    out += [
        _adaptive(f"dste_nt5_ns{ns}", "dste_nt5", "s2", "dste", ns / 5, ns, 5)
        for ns in s2["nt5_ns"]
    ]
    out += [
        _adaptive(f"dste_ns20_nt{nt}", "dste_ns20", "s2", "dste", 20 / nt, 20, nt)
        for nt in s2["ns20_nt"]
    ]
    out += [
        _adaptive(f"teacher_nt{nt}", "teacher", "baseline", "teacher", nt=nt)
        for nt in b["teacher_nt"]
    ]
    for method in ("student", "student-kd"):
        out += [
            _adaptive(f"{method}_ns{ns}", method, "baseline", method, ns=ns)
            for ns in b["student_ns"]
        ]
    g = "dkp_adaptive-4"
    out += [
        _adaptive(f"{g}_nt{nt}", g, "baseline", "dkp", 4, 4 * nt, nt) for nt in b["dkp_noens_nt"]
    ]
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ParamError(f"sweep: configuration names must be unique, found duplicates {dup}")
    return out


def groups(p: dict) -> list[str]:
    """Group names in declaration order (one Snakemake sweep job each)."""
    seen: list[str] = []
    for c in build(p):
        if c.group not in seen:
            seen.append(c.group)
    return seen


def by_name(p: dict) -> dict[str, Config]:
    return {c.name: c for c in build(p)}
