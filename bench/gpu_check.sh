#!/usr/bin/env bash
# GPU check for a machine with one CUDA GPU, at most ~8 minutes. From the project root:
#
#   bash bench/gpu_check.sh                   # install a CUDA torch into .venv if needed, then check
#   bash bench/gpu_check.sh --wheels DIR      # offline: pip installs from the wheels in DIR only
#       (for a python that has a CUDA torch: decord, av, jsonschema, jsonschema-specifications,
#       referencing, rpds-py, setuptools; `pip download --no-deps --only-binary=:all:` them)
#   bash bench/gpu_check.sh --dry-run         # CPU only, nothing installed: the same steps, small
#       (one seed, one epoch, a few frames)
#
# 1. .venv: created if missing. Where the interpreter ($PYTHON, default python3) already has a
#    CUDA torch, a .pth file lets .venv see its packages (no download); otherwise torch is
#    installed from pip's default index at the version constraints.txt pins (the Linux x86-64
#    wheels on PyPI are CUDA builds; constraints.txt's own pin is meant for a CPU build). Then
#    the project (`pip install --no-deps -e .`) and its runtime dependencies, except dvc and
#    snakemake, which this check does not call.
# 2. The tiny pipeline (tests/params-tiny.yaml, run.device: cuda) stage by stage in a scratch
#    folder ($WORK, default a new temporary one), as dvc.yaml runs it.
# 3. Training steps at 224 px: the teacher (ResNet-50) and the student (MobileNetV2) of
#    configs/activitynet.yaml, at its batch (batch_videos x segments frames), each step as the
#    training loop does it: copy to the device, to float, ImageNet standardisation, forward
#    under autocast, cross-entropy, backward, SGD. Twice per network: *memory*, random uint8
#    frames already in host memory (the device's own rate), and *loader*, the same steps fed
#    by the real loader (dkp.train.loader.StepReader: the preset's train.loader workers and
#    prefetch, page-locked ring, copy without waiting) from a frame store of random frames
#    written to $WORK (page-cached: a local store). Prints images/s, the median time a step
#    waited for its frames, and the GPU utilisation nvidia-smi reports during the timed steps.
#
# 4. One DKP-phase step (dkp.train.dkp_phase.dkp_step: the student and the DKP module trained, the
#    teacher frozen) at the preset's largest step: one video of the longest reference video's
#    largest n_s + n_t, or max_frames_per_step frames where that is more (dkp.resources). Prints the
#    step time, the peak GPU memory and the host's peak resident memory.
# 5. With 2 or more GPUs visible (and in the dry run, on 2 CPU processes over gloo): one teacher
#    step of the preset's batch on 2 processes under torchrun, DDP as the stages run it
#    (dkp.train.distributed): its time and peak GPU memory a process.
# Every step runs with the stages' cuDNN settings (dkp.train.loop.make_deterministic:
# deterministic, benchmark off), and the last two print them.
#
# Options: --steps N (timed steps per network; default 30, dry run 1), --batch N (frames a
# step; default the preset's, dry run 2), --size N (input side; default the preset's 224,
# dry run 64), --keep (keep the scratch folder). $WORK: a folder to use (kept); $PYTHON: the
# interpreter (the dry run uses it as it is). Exit status 0 when every step ran, else 1 or 2.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

DRY=0 STEPS="" BATCH="" SIZE="" WHEELS="" KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --steps) STEPS="$2"; shift ;;
    --batch) BATCH="$2"; shift ;;
    --size) SIZE="$2"; shift ;;
    --wheels) WHEELS="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
START=$(date +%s)
PYTHON_GIVEN="${PYTHON:-}"
PYTHON="${PYTHON:-python3}"
export DKP_NO_PROGRESS=1 PYTHONUNBUFFERED=1
say() { printf '[gpu_check %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }

has_cuda_torch() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }

# ---- 1. environment ------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  STEPS="${STEPS:-1}" WARMUP=1 SIZE="${SIZE:-64}"  # the script's paths, not a measurement
  # nothing installed: $PYTHON if given, else the project's .venv if there is one, else python3
  if [ -z "$PYTHON_GIVEN" ] && [ -x .venv/bin/python ]; then PY="$ROOT/.venv/bin/python"; else PY="$PYTHON"; fi
  say "dry run on the CPU with $PY (nothing installed)"
else
  DEVICE=cuda
  STEPS="${STEPS:-30}" WARMUP=5
  PIP_ARGS=()
  [ -n "$WHEELS" ] && PIP_ARGS=(--no-index --find-links "$WHEELS")
  command -v nvidia-smi >/dev/null || say "warning: nvidia-smi not found; GPU utilisation will read n/a"
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $PYTHON"
    # without ensurepip (some distributions' pythons), a venv without pip: the base's pip is used below
    "$PYTHON" -m venv .venv 2>/dev/null || { rm -rf .venv; "$PYTHON" -m venv --without-pip .venv; } \
      || die "$PYTHON cannot create .venv"
    if has_cuda_torch "$PYTHON"; then  # reuse the interpreter's CUDA torch rather than download one
      site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      "$PYTHON" -c 'import site, sys; print("\n".join(site.getsitepackages()))' > "$site/_gpu_check_base.pth"
      say "$PYTHON has a CUDA torch: .venv sees its packages ($site/_gpu_check_base.pth)"
    fi
  fi
  "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1 || die ".venv has no pip (and $PYTHON none to lend)"
  PY="$ROOT/.venv/bin/python"
  if ! has_cuda_torch "$PY"; then
    pin=$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' constraints.txt)
    say "installing torch==$pin from pip's default index (a CUDA build on Linux x86-64)"
    "$PY" -m pip uninstall -q -y torch >/dev/null 2>&1 || true  # a CPU build of the same version would count as installed
    "$PY" -m pip install -q "${PIP_ARGS[@]}" "torch==$pin" || die "pip could not install torch==$pin"
    has_cuda_torch "$PY" || die "torch in .venv sees no CUDA device (driver? CUDA_VISIBLE_DEVICES?)"
  fi
  if ! "$PY" -c 'import dkp, os, sys; sys.exit(0 if os.path.realpath(dkp.__file__).startswith(os.path.realpath("src")) else 1)' 2>/dev/null; then
    say "installing the project (editable, no dependencies) and its runtime dependencies but dvc/snakemake"
    # without build isolation where setuptools is already there (no download), else pip's usual way
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
      || "$PY" -m pip install -q "${PIP_ARGS[@]}" --no-deps -e . || die "pip could not install the project"
  fi
  mapfile -t deps < <("$PY" - <<'EOF'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if not d.split(">")[0].split("=")[0].split("<")[0].strip().startswith(("torch", "dvc", "snakemake"))))
EOF
)
  "$PY" -m pip install -q "${PIP_ARGS[@]}" "${deps[@]}" || die "pip could not install ${deps[*]}"
fi
"$PY" -c 'import torch, dkp; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device: "
          + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu only"))' \
  || die "$PY cannot import torch and dkp"
say "environment ready"

# ---- 2. the tiny pipeline on $DEVICE ---------------------------------------------------------
if [ -n "${WORK:-}" ]; then
  mkdir -p "$WORK"  # the caller's folder: kept
else
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/dkp-gpu-check.XXXXXX")"
  [ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
fi
"$PY" - "$ROOT/tests/params-tiny.yaml" "$WORK/params.yaml" "$DEVICE" "$DRY" <<'EOF'
import sys, yaml
src, dst, device, dry = sys.argv[1:]
p = yaml.safe_load(open(src))
p["run"]["device"] = device
p["run"]["precision"] = "auto"  # bf16 autocast on the GPU, as a real run (the tests' params say fp32)
if dry == "1":  # the dry run checks the steps, not the spread nor the training
    p["run"]["seeds"] = p["run"]["seeds"][:1]
    for phase in ("teacher", "student", "plain_student"):
        p["train"][phase]["epochs"] = 1
yaml.safe_dump(p, open(dst, "w"), sort_keys=False)
EOF
SEEDS=$("$PY" -c 'import sys, yaml; print(" ".join(map(str, yaml.safe_load(open(sys.argv[1]))["run"]["seeds"])))' "$WORK/params.yaml")
stage() {
  local t0=$(date +%s)
  (cd "$WORK" && "$PY" -m dkp.cli "$@" --params params.yaml > "$WORK/stage.log" 2>&1) \
    || { cat "$WORK/stage.log" >&2; die "dkp $* (device $DEVICE)"; }
  say "dkp $* ok ($(( $(date +%s) - t0 )) s)"
}
say "tiny pipeline, run.device: $DEVICE, seeds $SEEDS, in $WORK"
stage synthesize; stage data; stage frames; stage data-report
for s in $SEEDS; do stage train-teacher --seed "$s"; stage train-student --seed "$s"; done
for s in $SEEDS; do stage features --seed "$s"; stage sweep --seed "$s"; done
stage evaluate; stage figures
"$PY" - "$WORK/results/metrics.json" <<'EOF'
import json, sys
ops = json.load(open(sys.argv[1])).get("operating_points", {})
print("  results/metrics.json:", "; ".join(f"{k} mAP {v['mAP']}" for k, v in ops.items()
                                           if isinstance(v, dict) and "mAP" in v) or "written")
EOF

# ---- 3. training steps at 224 px --------------------------------------------------------------
say "training steps at ${SIZE:-224} px ($STEPS timed after $WARMUP warm-up, device $DEVICE)"
"$PY" - "$ROOT/configs/activitynet.yaml" "$DEVICE" "$STEPS" "$WARMUP" "${BATCH:-}" "$DRY" "${SIZE:-}" "$WORK" <<'EOF'
"""Teacher and student training steps at the preset's sizes, from host memory and through the
real loader: images/s, time waited for frames, GPU use."""
import shutil, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from dkp.models import autocast, build_backbone, prepare, unit
from dkp.train import loader, loop

sys.path.insert(0, "bench")
from loader_bench import make_store  # noqa: E402  (a bench script, not a package)

preset, device, steps, warmup, batch, dry, size_arg, work = sys.argv[1:]
p, device, steps, warmup = yaml.safe_load(open(preset)), torch.device(device), int(steps), int(warmup)
cuda = device.type == "cuda"
loop.make_deterministic(device)  # the stages' own cuDNN settings: deterministic, no benchmarking


def gpu_sampler():
    """nvidia-smi sampling utilisation every 100 ms, or None where it is absent."""
    if not (cuda and shutil.which("nvidia-smi")):
        return None
    idx = str(torch.cuda.current_device())
    return subprocess.Popen(["nvidia-smi", "-i", idx, "--query-gpu=utilization.gpu,memory.used",
                             "--format=csv,noheader,nounits", "-lms", "100"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def run(net_key, train_key, feed):
    net, cfg = p[net_key], p["train"][train_key]
    n = int(batch) if batch else cfg["batch_videos"] * cfg["segments"]
    if dry == "1" and not batch:
        n = 2
    size = int(size_arg) if size_arg else net["input_size"]
    torch.manual_seed(0)
    model = build_backbone(net, 200).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"])
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 200, 2 * n)).to(device)
    total = warmup + steps
    if feed == "memory":
        pool = torch.from_numpy(rng.integers(0, 256, (2 * n, size, size, 3), dtype=np.uint8))
        frames = (pool[(i % 2) * n:(i % 2) * n + n].to(device, non_blocking=True) for i in range(total))
        workers = 0
    else:  # the real loader, over a store of n videos x 8 frames written to $WORK
        store = Path(tempfile.mkdtemp(dir=work, prefix=f"store-{size}-"))
        videos = make_store(store, n, 8, rng, side=size)
        plan = [{"x": [(int(v), int(rng.integers(8))) for v in rng.permutation(n)]} for _ in range(total)]
        lp = p["train"]["loader"]
        workers = 2 if dry == "1" else lp["workers"]
        frames = (s["x"] for s in loader.steps(videos, plan, ("x",), workers, lp["prefetch"], device))
    waits = []

    def step(i):
        a = time.perf_counter()
        x = next(frames)
        waits.append(time.perf_counter() - a)
        x = prepare(unit(x.permute(0, 3, 1, 2)), size, net["normalize"])
        with autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels[(i % 2) * n:(i % 2) * n + n])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    model.train()
    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    sampler = gpu_sampler()
    waits.clear()
    t0 = time.perf_counter()
    for i in range(warmup, total):
        loss = step(i)
    float(loss.detach())  # the loop reads the loss each step; one read here waits for the last step
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    util = "n/a"
    if sampler is not None:
        sampler.terminate()
        out, _ = sampler.communicate()
        rows = [r.split(",") for r in out.strip().splitlines() if r.count(",") == 1]
        vals = [float(u) for u, _ in rows if u.strip().replace(".", "").isdigit()]
        if vals:
            util = f"{np.mean(vals):.0f}% mean, {np.max(vals):.0f}% max over {len(vals)} samples"
    mem = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""
    print(f"  {net_key:7s} {net['arch']:12s} {size:3d} px, {n:4d} frames a step, {feed:6s} "
          f"({workers} workers): {steps * n / dt:8.1f} images/s ({1000 * dt / steps:.1f} ms a step, "
          f"waited {1000 * np.median(waits):.1f} ms for frames{mem}); GPU utilisation {util}",
          flush=True)
    if feed == "loader":
        del frames, videos
        shutil.rmtree(store)


for net_key, train_key in (("teacher", "teacher"), ("student", "plain_student")):
    for feed in ("memory", "loader"):
        run(net_key, train_key, feed)
EOF
# ---- 4. one DKP-phase step at the preset's largest step --------------------------------------
say "DKP-phase step at the preset's largest step (device $DEVICE)"
"$PY" - "$ROOT/configs/activitynet.yaml" "$DEVICE" "$DRY" <<'EOF'
"""One dkp_step as the DKP phase runs it, at the preset's largest step."""
import resource, sys, time

import torch
import yaml

from dkp import configs as configs_mod
from dkp import resources, sampling
from dkp.checkpoints import dkp_config
from dkp.models import build_backbone, prepare, preprocess, unit
from dkp.models.dkp import DKP
from dkp.train import loop
from dkp.train.dkp_phase import StepInputs, dkp_step

preset, device, dry = sys.argv[1:]
p, device = yaml.safe_load(open(preset)), torch.device(device)
cuda = device.type == "cuda"
loop.make_deterministic(device)
if dry == "1":  # the script's path on the CPU, not a measurement
    B, ns, nt, size = 1, 4, 2, 64
    for net in ("student", "teacher"):
        p[net].update(input_size=size, width=0.25)
else:
    size = p["frames"]["crop"] or p["frames"]["size"]
    longest = float(resources.reference_durations(p["data"]["source"]).max())
    ns, nt = max(
        (sampling.role_counts(c, longest) for c in configs_mod.build(p) if c.method in ("dkp", "dste")),
        key=sum,
    )
    B = max(1, p["train"]["student"]["max_frames_per_step"] // (ns + nt))
torch.manual_seed(0)
student = build_backbone(p["student"], 200).to(device)
teacher = build_backbone(p["teacher"], 200).to(device).eval().requires_grad_(False)
dkp = DKP(student.feature_dim, teacher.feature_dim, 200, **dkp_config(p["dkp"])).to(device)
dkp.init_heads(teacher.head, student.head)
opt = torch.optim.SGD(list(student.parameters()) + list(dkp.parameters()), lr=0.01, momentum=0.9)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
cfg = p["train"]["student"]
g = torch.Generator().manual_seed(0)
fs = torch.randint(0, 256, (B * ns, size, size, 3), dtype=torch.uint8, generator=g).to(device)
ft = torch.randint(0, 256, (B * nt, size, size, 3), dtype=torch.uint8, generator=g).to(device)
x = unit(fs.permute(0, 3, 1, 2))
xs = prepare(x, p["student"]["input_size"], p["student"]["normalize"])
xt = prepare(x, p["teacher"]["input_size"], p["teacher"]["normalize"])
gt = preprocess(ft, p["teacher"]["input_size"], p["teacher"]["normalize"])
inputs = StepInputs(
    xs=xs,
    xt=xt,
    gt=gt,
    u=torch.rand(B, ns, device=device),
    v=torch.rand(B, nt, device=device),
    f_mask=torch.ones(B, ns, dtype=torch.bool, device=device),
    g_mask=torch.ones(B, nt, dtype=torch.bool, device=device),
    y=torch.randint(0, 200, (B,), device=device),
)
times = []
for _ in range(2):  # the second step is timed
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    terms, _, _ = dkp_step((student, dkp, teacher), inputs, opt, sched, cfg, device)
    if cuda:
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
mem = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""
host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f"  dkp phase: {B} video(s) x (n_s {ns} + n_t {nt}) = {B * (ns + nt)} frames at {size} px: "
      f"{1000 * times[-1]:.0f} ms a step (loss {terms['total']:.2f}){mem}, host peak {host:.1f} GiB; "
      f"cuDNN deterministic {torch.backends.cudnn.deterministic}, "
      f"benchmark {torch.backends.cudnn.benchmark}", flush=True)
EOF

# ---- 5. one DDP step on 2 processes ------------------------------------------------------------
NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if [ "$DRY" = 1 ] || [ "$NGPU" -ge 2 ]; then
  say "2-process DDP teacher step (device $DEVICE, $NGPU GPUs visible)"
  cat > "$WORK/ddp_step.py" <<'EOF'
"""One teacher step of the preset's batch on the torchrun ranks, DDP as the stages run it."""
import resource, sys, time

import numpy as np
import torch
import yaml

from dkp.models import build_backbone, prepare, unit
from dkp.train import distributed, loop
from dkp.train.classifier import classifier_step

preset, device, dry = sys.argv[1:]
p = yaml.safe_load(open(preset))
group, device = distributed.init(torch.device(device))
cuda = device.type == "cuda"
loop.make_deterministic(device)
cfg, net = p["train"]["teacher"], p["teacher"]
n = 4 if dry == "1" else cfg["batch_videos"] * cfg["segments"]
size = 64 if dry == "1" else net["input_size"]
if dry == "1":
    net = {**net, "width": 0.25}
torch.manual_seed(0)
model = build_backbone(net, 200).to(device)
ddp = distributed.wrap(model, group, device)
opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
rng = np.random.default_rng(0)
mine = group.share(n)
frames = torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))[mine]
labels = torch.from_numpy(rng.integers(0, 200, n))[mine].to(device)
x = prepare(unit(frames.to(device).permute(0, 3, 1, 2)), size, net["normalize"])
times = []
for _ in range(3):  # the last two timed
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    classifier_step(ddp, x, labels, opt, sched, 0.0, device, group, n)
    if cuda:
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
step, mem, host = (v / group.world for v in group.sum([max(times[1:]), mem, host]))
if group.main:
    gpu = f", peak GPU memory {mem:.1f} GiB a process" if cuda else ""
    print(f"  ddp: {group.world} processes x {len(labels)} of {n} frames at {size} px: "
          f"{1000 * step:.0f} ms a step ({n / step:.0f} images/s){gpu}, host peak {host:.1f} GiB "
          f"a process; cuDNN deterministic {torch.backends.cudnn.deterministic}, "
          f"benchmark {torch.backends.cudnn.benchmark}", flush=True)
distributed.close(group)
EOF
  (cd "$WORK" && OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 \
      ddp_step.py "$ROOT/configs/activitynet.yaml" "$DEVICE" "$DRY") || die "the 2-process DDP step"
else
  say "$NGPU GPU visible: the 2-process DDP step needs 2"
fi

ELAPSED=$(( $(date +%s) - START ))
say "done in ${ELAPSED} s$([ "$ELAPSED" -gt 480 ] && echo ' (over the 8-minute budget)')"
