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


def build(p: dict) -> list[Config]:
    """All configurations, in a fixed order (figure, group, then cost)."""
    s = p["sweep"]
    out: list[Config] = []
    for ratio in s["s1"]["ratios"]:
        g = f"dste_adaptive-{ratio}"
        out += [
            Config(f"{g}_nt{nt}", g, "s1", "dste", "adaptive", ratio, ratio * nt, nt, None, None)
            for nt in s["s1"]["adaptive_nt"]
        ]
    for ratio in s["s1"]["ratios"]:
        g = f"dste_fixed-{ratio}"
        out += [
            Config(f"{g}_rt{_num(rt)}", g, "s1", "dste", "fixed", ratio, None, None, rt / ratio, rt)
            for rt in sorted(s["s1"]["fixed_rt"], reverse=True)
        ]
    out += [
        Config(f"dste_nt5_ns{ns}", "dste_nt5", "s2", "dste", "adaptive", ns / 5, ns, 5, None, None)
        for ns in s["s2"]["nt5_ns"]
    ]
    out += [
        Config(
            f"dste_ns20_nt{nt}", "dste_ns20", "s2", "dste", "adaptive", 20 / nt, 20, nt, None, None
        )
        for nt in s["s2"]["ns20_nt"]
    ]
    b = s["baselines"]
    out += [
        Config(
            f"teacher_nt{nt}",
            "teacher",
            "baseline",
            "teacher",
            "adaptive",
            None,
            None,
            nt,
            None,
            None,
        )
        for nt in b["teacher_nt"]
    ]
    for method in ("student", "student-kd"):
        out += [
            Config(
                f"{method}_ns{ns}",
                method,
                "baseline",
                method,
                "adaptive",
                None,
                ns,
                None,
                None,
                None,
            )
            for ns in b["student_ns"]
        ]
    out += [
        Config(
            f"dkp_adaptive-4_nt{nt}",
            "dkp_adaptive-4",
            "baseline",
            "dkp",
            "adaptive",
            4,
            4 * nt,
            nt,
            None,
            None,
        )
        for nt in b["dkp_noens_nt"]
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
