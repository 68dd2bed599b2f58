"""Benchmark 2: training throughput, the real data path vs the raw forward+backward rate.

    .venv/bin/python bench/train_bench.py [--params params.yaml] [--rounds 5] [--steps 40]
                                          [--phases teacher,plain,dkp] [--threads T] [--breakdown]
                                          [--profile PHASE] [--json out.json]

Run from a project root where `dkp frames` has run (the default data: data/frames).
Per training phase (teacher = `dkp train-teacher`; plain and dkp = two phases of
`dkp train-student`) two paths run the same optimiser steps:
- real: the stage's own epoch function (dkp.train.classifier.train_classifier and
  dkp.train.dkp_phase.train_dkp, captured by replacing loop.run_phase, so nothing is
  checkpointed and the per-epoch validation gets no frames): the VideoSet of
  data/frames read through dkp.framestore (memory-mapped), TSN / spread sampling,
  gather, augment, unit, prepare, forward, loss, backward, SGD step, schedule step;
- raw: a second copy of the same networks (same arch, width, input size, optimiser and
  schedule) stepping through the stages' own step functions (classifier.classifier_step,
  dkp_phase.dkp_step: forward, loss, backward, optimiser and schedule step, bookkeeping)
  on random tensors already in memory, already at the networks' input size and
  standardised, with exactly the batch shapes the real round used (recorded by a
  forward pre-hook: for dkp, the (B, n_s, n_t) of every step), so both do the same
  arithmetic.
Rounds alternate real, raw, real, raw, ... (after one untimed warm-up round of each),
each round at least --steps optimiser steps (whole epochs). Reported per phase and
path: frames per second from the fastest round (least disturbed by other jobs) and
from the median round, the median CPU seconds (user + system) per round, and the
ratio real / raw of frames per second (goal: >= 0.85). Frames = the frames the trained
network sees per step (teacher, plain: batch_videos x segments; dkp: batch_videos x
n_s student frames; the frozen teacher additionally embeds n_s + n_t frames a video).
--breakdown runs one more real round per phase with timers on the data-path functions
(VideoSet.gather, augment, unit, prepare/preprocess): milliseconds per step and their
share of the step. --profile PHASE runs one extra real round of that phase under cProfile
and prints the top functions by cumulative and by own time (to stderr).
On a shared machine use --threads 1: two OpenMP threads on two busy cores spin and the
rates swing by 3x between rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import sys
import time

os.environ.setdefault("DKP_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

PHASES = ("teacher", "plain", "dkp")


def capture_epoch(train_fn, *args):
    """Call a training function with loop.run_phase replaced: return (epoch_fn, stateful)."""
    from dkp.train import loop

    got = {}

    def fake_run_phase(folder, tag, epochs, seed, stateful, epoch_fn, group=None):
        got.update(epoch=epoch_fn, stateful=stateful, seed=seed)
        return []

    orig = loop.run_phase
    loop.run_phase = fake_run_phase
    try:
        train_fn(*args)
    finally:
        loop.run_phase = orig
    return got


class Recorder:
    """Forward pre-hook on a module: the shapes of its inputs, one entry per call (per step)."""

    def __init__(self, module, key):
        self.shapes, self.key = [], key
        module.register_forward_pre_hook(
            lambda m, inp: self.shapes.append(self.key(inp)) if m.training else None
        )

    def take(self) -> list:
        out, self.shapes = self.shapes, []
        return out


def build(p: dict, phase: str, train, num_classes: int, device, folder):
    """(real round fn, raw round fn, frames-per-shape fn, steps per epoch) for one phase."""
    from dkp import runtime
    from dkp.checkpoints import dkp_config
    from dkp.models import build_backbone
    from dkp.models.dkp import DKP
    from dkp.train import classifier, loop
    from dkp.train.context import TrainContext
    from dkp.train.dkp_phase import StepInputs, dkp_step, train_dkp
    from dkp.train.student import dkp_pairs

    # no monitor frames: the per-epoch validation is not part of a step
    ctx = TrainContext(
        train, np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64), device, folder
    )
    if phase in ("teacher", "plain"):
        net = p["teacher"] if phase == "teacher" else p["student"]
        cfg = p["train"]["teacher"] if phase == "teacher" else p["train"]["plain_student"]
        seed = p["run"]["seeds"][0]
        runtime.seed_everything(seed)
        models = [build_backbone(net, num_classes).to(device) for _ in range(2)]
        got = capture_epoch(
            classifier.train_classifier,
            models[0],
            net,
            cfg,
            p["train"]["augment"],
            p["train"]["loader"],
            ctx,
            phase,
            seed,
        )
        rec = Recorder(models[0], lambda inp: int(inp[0].shape[0]))
        raw_model = models[1]
        opt = loop.optimizer(raw_model.parameters(), cfg, cfg["optimizer"])
        steps = -(-len(train) // cfg["batch_videos"])
        sched = loop.warmup_cosine(opt, cfg["warmup_epochs"] * steps, cfg["epochs"] * steps)
        size, gen = net["input_size"], torch.Generator().manual_seed(1)
        cache = {}

        def raw_step(n: int):
            if (
                n not in cache
            ):  # random, standardised-like inputs at the network's input size, made once
                cache[n] = (
                    torch.randn(n, 3, size, size, generator=gen).to(device),
                    torch.randint(0, num_classes, (n,), generator=gen).to(device),
                )
            classifier.classifier_step(
                raw_model, *cache[n], opt, sched, cfg["label_smoothing"], device
            )

        def raw_round(shapes):
            raw_model.train()
            for n in shapes:
                raw_step(n)

        return got, rec, raw_round, (lambda n: n), steps

    # dkp: phase 2 of train-student, from a fresh plain student and a fresh frozen teacher
    cfg, net, k = p["train"]["student"], p["student"], p["dkp"]
    t_entry = {"input_size": p["teacher"]["input_size"], "normalize": p["teacher"]["normalize"]}
    seed = p["run"]["seeds"][0]
    sets = []
    for _ in range(2):
        runtime.seed_everything(seed)
        teacher = build_backbone(p["teacher"], num_classes).to(device).eval().requires_grad_(False)
        student = build_backbone(net, num_classes).to(device)
        dkp = DKP(student.feature_dim, teacher.feature_dim, num_classes, **dkp_config(k))
        dkp.init_heads(teacher.head, student.head)
        sets.append((teacher, student, dkp.to(device)))
    pairs = dkp_pairs(p)
    got = capture_epoch(
        train_dkp, p, sets[0][1:] + sets[0][:1], t_entry, ctx, lambda: {}, seed, pairs
    )
    # a step's shape: videos, and its padded student and teacher frames per video
    rec = Recorder(
        sets[0][2], lambda inp: (int(inp[0].shape[0]), int(inp[0].shape[1]), int(inp[2].shape[1]))
    )
    teacher, student, dkp = sets[1]
    opt = loop.optimizer(list(student.parameters()) + list(dkp.parameters()), cfg, "sgd")
    steps = -(-len(train) // cfg["batch_videos"])
    sched = loop.warmup_cosine(opt, cfg["warmup_epochs"] * steps, cfg["epochs"] * steps)
    ts, ss, gen = p["teacher"]["input_size"], net["input_size"], torch.Generator().manual_seed(1)
    cache = {}

    def raw_step(shape):
        # random inputs of the step's padded shape, made once per shape; every frame valid (a
        # ragged step of fixed sampling costs a little less in the stage)
        if shape not in cache:
            B, ns, nt = shape
            cache[shape] = StepInputs(
                xs=torch.randn(B * ns, 3, ss, ss, generator=gen).to(device),
                xt=torch.randn(B * ns, 3, ts, ts, generator=gen).to(device),
                gt=torch.randn(B * nt, 3, ts, ts, generator=gen).to(device),
                u=torch.rand(B, ns, generator=gen).to(device),
                v=torch.rand(B, nt, generator=gen).to(device),
                f_mask=torch.ones(B, ns, dtype=torch.bool, device=device),
                g_mask=torch.ones(B, nt, dtype=torch.bool, device=device),
                y=torch.randint(0, num_classes, (B,), generator=gen).to(device),
            )
        dkp_step((student, dkp, teacher), cache[shape], opt, sched, cfg, device)

    def raw_round(shapes):
        student.train()
        dkp.train()
        for s in shapes:
            raw_step(s)

    return got, rec, raw_round, (lambda s: s[0] * s[1]), steps


def _clock(fn):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def breakdown(real_round, train, state, frames_of) -> dict:
    """One more real round with the data-path functions wrapped in timers: milliseconds per
    step in gather (VideoSet.gather: memory-mapped frames to one uint8 array), augment,
    unit, prepare/preprocess (per-network resize and standardisation), and the rest."""
    from dkp.train import batches, classifier, dkp_phase

    spent: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    saved = [
        (batches, "augment"),
        (classifier, "unit"),
        (classifier, "prepare"),
        (dkp_phase, "unit"),
        (dkp_phase, "prepare"),
        (dkp_phase, "preprocess"),
    ]
    originals = [getattr(m, n) for m, n in saved]
    for (m, n), fn in zip(saved, originals):
        setattr(m, n, timed("prepare" if n == "preprocess" else n, fn))
    train.gather = timed("gather", VideoSetGather(train))
    try:
        t0 = time.perf_counter()
        real_round()
        total = time.perf_counter() - t0
    finally:
        for (m, n), fn in zip(saved, originals):
            setattr(m, n, fn)
        del train.gather
    steps = len(state["shapes"])
    out = {f"ms_per_step_{k}": 1e3 * v / steps for k, v in spent.items()}
    out["ms_per_step_total"] = 1e3 * total / steps
    out["data_path_share"] = sum(spent.values()) / total
    return out


class VideoSetGather:
    """The class's own gather, bound to one VideoSet (so an instance attribute can wrap it)."""

    def __init__(self, vs):
        self.vs = vs

    def __call__(self, pairs):
        return type(self.vs).gather(self.vs, pairs)


def bench_phase(p, phase, train, num_classes, device, folder, args) -> dict:
    from dkp import runtime

    got, rec, raw_round, frames_of, steps = build(p, phase, train, num_classes, device, folder)
    epochs = max(1, -(-args.steps // steps))
    rng = np.random.default_rng(got["seed"])
    runtime.seed_everything(got["seed"])
    state = {"epoch": 0, "shapes": []}

    def real_round():
        for _ in range(epochs):
            got["epoch"](state["epoch"], rng)
            state["epoch"] += 1
        state["shapes"] = rec.take()

    real_round()  # warm-up: page cache, allocator, kernels
    raw_round(state["shapes"])
    runs = {"real": [], "raw": []}
    for _ in range(args.rounds):
        wall, cpu = _clock(real_round)
        n = sum(frames_of(s) for s in state["shapes"])
        runs["real"].append((n / wall, cpu, wall, n, len(state["shapes"])))
        shapes = state["shapes"]
        wall, cpu = _clock(lambda shapes=shapes: raw_round(shapes))
        runs["raw"].append((n / wall, cpu, wall, n, len(shapes)))
    r = {"phase": phase, "steps_per_round": runs["real"][0][4], "epochs_per_round": epochs}
    for path, v in runs.items():
        r[f"{path}_fps_best"] = max(x[0] for x in v)
        r[f"{path}_fps_median"] = statistics.median(x[0] for x in v)
        r[f"{path}_cpu_s_median"] = statistics.median(x[1] for x in v)
        r[f"{path}_frames_per_round_median"] = statistics.median(x[3] for x in v)
    r["ratio_best"] = r["real_fps_best"] / r["raw_fps_best"]
    # same frames: fps ratio by CPU time
    r["ratio_cpu"] = r["raw_cpu_s_median"] / r["real_cpu_s_median"]
    r["ratio_median"] = r["real_fps_median"] / r["raw_fps_median"]
    # per round pairs (real and raw ran back to back): the median of the pairwise ratios
    r["ratio_paired_median"] = statistics.median(
        a[0] / b[0] for a, b in zip(runs["real"], runs["raw"])
    )
    if args.breakdown:
        r.update(breakdown(real_round, train, state, frames_of))
    if args.profile == phase:
        prof = cProfile.Profile()
        prof.runcall(real_round)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    return r


def main() -> int:
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per path (alternating)")
    ap.add_argument(
        "--steps", type=int, default=40, help="at least this many optimiser steps per round"
    )
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default run.threads)")
    ap.add_argument(
        "--profile",
        choices=PHASES,
        default=None,
        help="cProfile one extra real round of this phase",
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="one more real round per phase with timers on the data-path functions",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from dkp import framestore, params, runtime
    from dkp.train.data import load_subset

    p = params.load(args.params)
    if args.threads:
        p["run"]["threads"] = args.threads
    device = runtime.setup(p, p["run"]["seeds"][0])
    classes = framestore.load_classes(p)
    train = load_subset(p, p["data"]["train_subset"], len(classes))
    out = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "train_videos": len(train),
        "train_frames": train.n_frames_total,
        "rounds": args.rounds,
        "phases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for phase in args.phases.split(","):
            r = bench_phase(p, phase, train, len(classes), device, Path(tmp), args)
            out["phases"].append(
                {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
            )
            print(json.dumps(out["phases"][-1]), file=sys.stderr, flush=True)
    out["load_avg"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
