"""`dkp <stage>`: the one entry point that dvc.yaml and the Snakefile both call.

Stage modules are imported lazily so `dkp validate-params` stays instant. Each
stage module exposes `run(params: dict, args: argparse.Namespace) -> None`. The stages in
PER_SEED run once per seed: `--seed N` (one of run.seeds) picks the seed and its folders.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import gpus, launch
from . import params as params_mod
from .errors import DkpError, ParamError

# stage name -> (module, one-line help)
STAGES = {
    "validate-params": ("dkp.params", "validate params.yaml against the schema and exit"),
    "synthesize": (
        "dkp.synthetic",
        "generate the synthetic ActivityNet-format dataset (source: synthetic)",
    ),
    "data": (
        "dkp.ingest",
        "ingest annotations and videos into data/manifest.csv and data/classes.txt",
    ),
    "frames": ("dkp.frames", "extract frames with decord into data/frames/"),
    "data-report": (
        "dkp.data_report",
        "count videos per subset and status into results/data_report.json",
    ),
    "train-teacher": ("dkp.train.teacher", "train the teacher network"),
    "train-student": ("dkp.train.student", "train the student with DKP and the ensemble gate"),
    "flops": ("dkp.flops", "print a backbone's per-frame cost in GFLOPs (multiply-accumulates)"),
    "features": (
        "dkp.features",
        "cache per-frame teacher and student features of the evaluated videos",
    ),
    "sweep": ("dkp.sweep", "run every sampling configuration from the feature cache"),
    "evaluate": ("dkp.evaluate", "score predictions: mAP, official mAP, top-1, GFLOPs"),
    "figures": ("dkp.figures", "render Figures S-1, S-2, S-3 and results/README.md"),
}

# the pipeline's stages in the order dvc.yaml runs them (validate-params and flops are tools)
PIPELINE = tuple(name for name in STAGES if name not in ("validate-params", "flops"))
PER_SEED = ("train-teacher", "train-student", "features", "sweep")
TRAINING = ("train-teacher", "train-student")
# the stages that read the `pretrained` files match them first (dkp.models.check_pretrained); so
# do validate-params and synthesize, the first stage of both runners, so that a wrong file stops a
# run before frame extraction
CHECK_WEIGHTS = ("validate-params", "synthesize", *TRAINING)


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/N, found {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"expected 0 <= i < N, found {text!r}")
    return i, n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dkp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for name, (_, help_) in STAGES.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument(
            "--params", default="params.yaml", help="parameter file (default: params.yaml)"
        )
        if name in PER_SEED:
            sp.add_argument(
                "--seed",
                type=int,
                required=True,
                metavar="N",
                help="the seed to run (one of run.seeds); outputs go to its seed-N folders",
            )
        if name in ("frames", "features"):
            sp.add_argument(
                "--shard",
                type=_shard,
                default=None,
                metavar="i/N",
                help="only frame shard i of N (N must equal frames.shards); default: all shards",
            )
        if name == "sweep":
            sp.add_argument(
                "--group", default=None, help="run one configuration group (default: all)"
            )
        if name == "flops":
            sp.add_argument(
                "--backbone",
                required=True,
                choices=["resnet18", "resnet34", "resnet50", "mobilenet_v2"],
            )
            sp.add_argument("--size", type=int, default=224, help="input side in px (default 224)")
            sp.add_argument(
                "--width", type=float, default=1.0, help="width multiplier (default 1.0)"
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, _ = STAGES[args.stage]
    try:
        if args.stage in PER_SEED:  # before torch is imported: which GPUs this job may use
            line = gpus.setup(args.stage)
            if line:
                print(line, file=sys.stderr, flush=True)
        if args.stage == "flops":
            params = None  # needs no params file
        else:
            params = params_mod.load(args.params, check_weights=args.stage in CHECK_WEIGHTS)
        if args.stage in PER_SEED:
            params_mod.check_seed(params, args.seed)
        if args.stage in TRAINING:  # torchrun's ranks, or Slurm's node tasks, each run this again
            cmd = launch.command(params, [sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
            if cmd is not None:
                os.execvp(cmd[0], cmd)
        if args.stage == "validate-params":
            print(f"{args.params}: valid")
            return 0
        module = importlib.import_module(module_name)
        module.run(params, args)
        return 0
    except ParamError as exc:
        print(f"dkp {args.stage}: invalid parameter: {exc}", file=sys.stderr)
        return exc.exit_code
    except DkpError as exc:
        print(f"dkp {args.stage}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"dkp {args.stage}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
        if os.environ.get("DKP_DEBUG"):
            raise
        print(
            f"dkp {args.stage}: internal error: {type(exc).__name__}: {exc} "
            f"(rerun with DKP_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
