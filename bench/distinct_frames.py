"""What charging distinct frames only does to each configuration: frames asked for vs fed, GFLOPs.

    .venv/bin/python bench/distinct_frames.py [--params params.yaml] [--seed 0] [--markdown]

Run from a project root after `dkp sweep --seed N`. For every configuration, from seed N's
predictions (which hold per video the nominal counts, the distinct counts fed, and the GFLOPs
charged on the distinct ones) and the cost model of seed N's checkpoints: the mean nominal
and distinct n_s and n_t, the distinct shares, the GFLOPs charged, the GFLOPs the nominal
counts would cost, and how far each curve point moves left on the GFLOPs axis.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dkp import configs as configs_mod  # noqa: E402
from dkp import layout  # noqa: E402
from dkp.evaluate import distinct_share  # noqa: E402
from dkp.predictions import read as read_predictions  # noqa: E402


def rows(p: dict, seed: int) -> list[dict]:
    from dkp.inference import Predictor

    cost = Predictor.load(p, "cpu", seed).cost()
    out = []
    for c in configs_mod.build(p):
        pred = read_predictions(layout.predictions_file(seed, c.group, c.name))
        nominal = np.mean(
            [cost.gflops(c.method, a, b) for a, b in zip(pred.ns_nominal, pred.nt_nominal)]
        )
        charged = float(pred.gflops.mean())
        out.append(
            {
                "name": c.name,
                "n_s_nominal": float(pred.ns_nominal.mean()),
                "n_s": float(pred.ns.mean()),
                "n_t_nominal": float(pred.nt_nominal.mean()),
                "n_t": float(pred.nt.mean()),
                "distinct_s": distinct_share([pred.ns], [pred.ns_nominal]),
                "distinct_t": distinct_share([pred.nt], [pred.nt_nominal]),
                "gflops_nominal": float(nominal),
                "gflops": charged,
                "saved": 1.0 - charged / nominal if nominal else 0.0,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    p = yaml.safe_load(Path(args.params).read_text())
    table = rows(p, args.seed)
    if args.markdown:
        print(
            "| configuration | n_s asked | n_s fed | n_t asked | n_t fed | distinct s | distinct t "
            "| GFLOPs asked | GFLOPs charged | saved |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in table:
            ds = "-" if np.isnan(r["distinct_s"]) else f"{100 * r['distinct_s']:.1f}%"
            dt = "-" if np.isnan(r["distinct_t"]) else f"{100 * r['distinct_t']:.1f}%"
            print(
                f"| {r['name']} | {r['n_s_nominal']:.1f} | {r['n_s']:.1f} | {r['n_t_nominal']:.1f} "
                f"| {r['n_t']:.1f} | {ds} | {dt} | {r['gflops_nominal']:.4f} | {r['gflops']:.4f} | "
                f"{100 * r['saved']:.1f}% |"
            )
    else:
        import json

        for r in table:
            print(
                json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()})
            )


if __name__ == "__main__":
    main()
