"""Where a training step's time goes, and AdamW's three CPU implementations compared.

For the default teacher and Student networks (params.yaml: arch, width, input size; the run's
threads), fixed random batches of `train.<net>.batch_videos` frames, channels-last as the stages
feed them:
- `--profile`: torch.profiler's share of each operator over 10 steps of the teacher;
- the optimiser step's time with torch's per-tensor loop (its CPU default), `foreach=True` and
  `fused=True`, and whether the weights after `--steps` steps equal the loop's bit for bit.

    python bench/optimizer_bench.py [--params params.yaml] [--steps 30] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dkp.models import build_backbone  # noqa: E402
from dkp.train import loop  # noqa: E402

# per-tensor loop (torch's CPU default, what the stages run), and the two batched implementations
KINDS = {"loop": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
CLASSES = 20


def _batches(n: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    last = torch.channels_last
    return [
        (
            torch.randn(n, 3, size, size, generator=g).contiguous(memory_format=last),
            torch.randint(0, CLASSES, (n,), generator=g),
        )
        for _ in range(4)
    ]


def setup_training(p: dict, net: str, kind: str):
    """(model, optimiser, batches): the network of params group `net` and the optimiser its
    training phase builds (dkp.train.loop.optimizer), with KINDS[kind] on top of its settings."""
    torch.manual_seed(0)
    model = build_backbone(p[net], CLASSES).to(memory_format=torch.channels_last)
    cfg = p["train"]["teacher" if net == "teacher" else "plain_student"]
    opt = loop.optimizer(model.parameters(), cfg, cfg["optimizer"])
    if KINDS[kind]:
        group = opt.param_groups[0]
        same = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay")}
        opt = type(opt)(group["params"], **same, **KINDS[kind])
    return model, opt, _batches(cfg["batch_videos"], p[net]["input_size"])


def _train(p: dict, net: str, kind: str, steps: int) -> tuple[torch.Tensor, float]:
    """Weights after `steps` steps, and the optimiser's mean ms a step."""
    model, opt, data = setup_training(p, net, kind)
    spent = 0.0
    for i in range(steps):
        x, y = data[i % len(data)]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        t = time.perf_counter()
        opt.step()
        spent += time.perf_counter() - t
    flat = torch.cat([v.flatten() for v in model.state_dict().values() if v.is_floating_point()])
    return flat, spent / steps * 1e3


def _profile(p: dict) -> None:
    from torch.profiler import ProfilerActivity, profile

    model, opt, data = setup_training(p, "teacher", "loop")
    x, y = data[0]

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    p = yaml.safe_load(Path(args.params).read_text())
    torch.set_num_threads(int(p["run"]["threads"]))
    if args.profile:
        _profile(p)
    print("| network | optimiser | ms a step | weights after the steps |")
    print("|---|---|---:|---|")
    for net in ("teacher", "student"):
        ref, ms = _train(p, net, "loop", args.steps)
        print(f"| {net} | loop | {ms:.2f} | (reference) |")
        for kind in ("foreach", "fused"):
            w, ms = _train(p, net, kind, args.steps)
            same = (
                "bit-identical"
                if torch.equal(ref, w)
                else (f"differ, max {(ref - w).abs().max().item():.3g}")
            )
            print(f"| {net} | {kind} | {ms:.2f} | {same} |")


if __name__ == "__main__":
    main()
