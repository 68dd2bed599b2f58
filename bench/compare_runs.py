"""Compare the verdicts and curves of complete runs, e.g. one machine against another.

    python bench/compare_runs.py NAME=RESULTS_DIR NAME=RESULTS_DIR [...]

Each RESULTS_DIR holds a run's claims.json, curves.csv and train/seed-*/ logs (a `results/`
folder, or one extracted from git: `git archive REV results | tar -x -C /tmp/ref`). Prints a
markdown table of every claim's effects and verdict per run, the mean and range of each run's
curve mAP minus the first run's, and every seed's final validation frame accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in a for a in argv):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    runs = {name: Path(folder) for name, folder in (a.split("=", 1) for a in argv)}
    claims = {k: json.loads((d / "claims.json").read_text()) for k, d in runs.items()}
    curves = {k: pd.read_csv(d / "curves.csv").set_index("name") for k, d in runs.items()}
    names = list(runs)
    print("| claim: effect | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for c, claim in claims[names[0]].items():
        # effects matched by their label without its GFLOPs range ("largest spread over
        # 0.4-0.596 GFLOPs"): the range moves with the curves
        for e in claim.get("effects", {}):
            cells = []
            for k in names:
                theirs = {
                    t.split(" over ")[0]: x
                    for t, x in claims[k].get(c, {}).get("effects", {}).items()
                }
                x = theirs.get(e.split(" over ")[0])
                cells.append(f"{x['effect']:+.2f} [{x['lo']:+.2f}, {x['hi']:+.2f}]" if x else "-")
            print(f"| {c}: {e} | " + " | ".join(cells) + " |")
        status = [claims[k].get(c, {}).get("status", "-") for k in names]
        print(f"| **{c}** | " + " | ".join(f"**{s}**" for s in status) + " |")
    print()
    base = curves[names[0]]["mAP"]
    for k in names[1:]:
        d = (curves[k]["mAP"] - base).dropna()
        print(
            f"{k} minus {names[0]}, mAP over {len(d)} curve points: mean {d.mean():+.2f}, "
            f"mean absolute {d.abs().mean():.2f}, range [{d.min():+.2f}, {d.max():+.2f}]"
        )
    for k, d in runs.items():
        accs = []
        for log in sorted(d.glob("train/seed-*/*.csv")):
            acc = pd.read_csv(log)["val_acc"].dropna()
            if len(acc):
                accs.append(f"{log.parent.name}/{log.stem} {acc.iloc[-1]:.3f}")
        print(f"{k}: final validation frame accuracy: " + ", ".join(accs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
