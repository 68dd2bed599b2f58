"""Train the teacher or the Student baseline once with changed settings, scored on the tuning split.

How the default recipe was chosen (bench/README.md, "Design measurements"): the network is
trained on data.train_subset with the params' recipe, changed by `--set key=value` (keys of
train.teacher / train.plain_student), and its frame accuracy on data.tune_subset is printed
every 10 epochs, next to the training loss. Nothing is written outside a temporary folder;
the validation subset is never read. Run after `dkp frames`, from the project root:

    python bench/recipe_trial.py --net student --seed 1 --set optimizer=sgd lr=0.03
                                 weight_decay=0.0005
    python bench/recipe_trial.py --net teacher --seed 0 --set optimizer=adamw lr=0.003
                                 weight_decay=0.05

The pipeline's own seeds are run seed + 0 (teacher) and run seed + 1 (Student baseline).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from dkp import framestore, params, runtime
from dkp.models import build_backbone
from dkp.train import classifier
from dkp.train.context import TrainContext
from dkp.train.data import load_subset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--net", choices=["teacher", "student"], required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    p = params.load(args.params)
    if not p["data"]["tune_subset"]:
        raise SystemExit(
            "recipe_trial: data.tune_subset is null: choices need a labelled split the report skips"
        )
    cfg = dict(p["train"]["teacher" if args.net == "teacher" else "plain_student"])
    for item in args.set:
        key, _, value = item.partition("=")
        cfg[key] = yaml.safe_load(value)
    cfg["val_every"] = 10
    device = runtime.setup(p, args.seed)
    classes = framestore.load_classes(p)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    tune = load_subset(p, p["data"]["tune_subset"], len(classes))
    frames, labels, _ = classifier.validation_frames(tune, p["train"]["val_frames_per_video"])
    runtime.seed_everything(args.seed)
    model = build_backbone(p[args.net], len(classes)).to(device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = classifier.train_classifier(
            model,
            p[args.net],
            cfg,
            p["train"]["augment"],
            p["train"]["loader"],
            TrainContext(train, frames, labels, device, Path(tmp)),
            "trial",
            args.seed,
        )
    scored = " ".join(
        f"{r['epoch']}:{r['loss']:.2f}/{r['val_acc']:.3f}"
        for r in rows
        if r.get("val_acc") is not None
    )
    print(
        f"{args.net} seed {args.seed} {' '.join(args.set)}: {time.perf_counter() - t0:.0f} s; "
        f"epoch:loss/tuning accuracy {scored}"
    )


if __name__ == "__main__":
    main()
