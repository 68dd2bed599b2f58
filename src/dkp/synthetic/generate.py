"""The `synthesize` stage: render and encode every video in parallel, swap the folder in atomically.

With `data.source` other than synthetic it writes only `data/synthetic/SOURCE.txt`
naming the real source, so the stage's output exists and nothing else changes.
Parallelism reuses `frames.workers` (processes); it does not change the output.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import atomic, layout, runtime
from ..errors import ParamError
from ..workers import imap_bounded
from . import annotations, render, writer
from .spec import VideoSpec, make_specs

ROOT = layout.SYNTHETIC
MARKER = "SOURCE.txt"


def _layout(p: dict) -> tuple[Path, Path]:
    """Annotation file and video folder relative to data/synthetic."""
    try:
        ann = Path(p["data"]["annotations"]).relative_to(ROOT)
        videos = Path(p["data"]["videos"]).relative_to(ROOT)
    except ValueError:
        raise ParamError(
            f"data.annotations and data.videos: expected paths under {ROOT}/ for source "
            f"synthetic, found {p['data']['annotations']!r} and {p['data']['videos']!r}"
        ) from None
    if ann == Path("."):
        raise ParamError(
            f"data.annotations: expected a file under {ROOT}/, found the folder itself"
        )
    return ann, videos


def _check(p: dict) -> None:
    syn = p["data"]["synthetic"]
    if syn["size"] % 2:
        raise ParamError(
            f"data.synthetic.size: expected an even number (H.264 yuv420p), found {syn['size']}"
        )
    if syn["fps"] < p["frames"]["fps"]:
        raise ParamError(
            f"data.synthetic.fps: expected >= frames.fps ({p['frames']['fps']}) so extraction "
            f"finds distinct frames, found {syn['fps']}"
        )


def make_video(task: tuple[VideoSpec, str]) -> tuple[str, int]:
    """Render and encode one video (runs in a worker process). Returns (id, bytes written)."""
    spec, path = task
    frames = render.render_frames(spec, np.arange(spec.n_frames))
    writer.write_mp4(path, frames, spec.fps)
    return spec.vid, Path(path).stat().st_size


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which terminates them (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _encode_all(specs: list[VideoSpec], folder: Path, workers: int) -> int:
    """Write every video into folder; longest first so the pool stays balanced. Returns total bytes.

    Leaving the loop for any reason (an error, an interrupt) terminates the workers, and a
    killed stage takes them with it (dkp.workers), so none outlives the stage.
    """
    todo = [
        (s, str(folder / f"v_{s.vid}.mp4"))
        for s in sorted(specs, key=lambda s: (-s.n_frames, s.vid))
    ]
    total = 0
    with tqdm(
        total=len(todo), unit="video", desc="synthesize", disable=runtime.progress_disabled()
    ) as bar:
        if workers <= 1:
            results = map(make_video, todo)
            for _, size in results:
                total += size
                bar.update()
            return total
        runs = imap_bounded(make_video, todo, workers, initializer=_ignore_sigint)
        with contextlib.closing(runs):  # the workers end before the caller cleans up
            for _, (_, size) in runs:
                total += size
                bar.update()
    return total


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM (how DVC and Snakemake stop a job) like Ctrl-C, so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(p: dict, args) -> None:
    if p["data"]["source"] != "synthetic":
        atomic.write_text(
            ROOT / MARKER,
            f"data.source: {p['data']['source']}\n"
            f"annotations: {p['data']['annotations']}\nvideos: {p['data']['videos']}\n"
            "The synthetic generator did not run; the pipeline reads the source above.\n",
        )
        print(f"synthesize: data.source is {p['data']['source']}; wrote {ROOT / MARKER} only")
        return
    _check(p)
    ann_rel, videos_rel = _layout(p)
    syn = p["data"]["synthetic"]
    specs = make_specs(
        syn, p["data"]["train_subset"], p["data"]["val_subset"], p["data"]["tune_subset"]
    )
    doc = annotations.build(specs, syn["num_classes"])
    atomic.clean_stale_temps(ROOT.parent, owner=ROOT.name)
    with _sigterm_as_interrupt(), atomic.atomic_dir(ROOT) as tmp:
        (tmp / videos_rel).mkdir(parents=True, exist_ok=True)
        (tmp / ann_rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / ann_rel).write_text(json.dumps(doc, sort_keys=True) + "\n")
        size = _encode_all(specs, tmp / videos_rel, min(p["frames"]["workers"], len(specs)))
    names = sorted({s.subset for s in specs})
    per_subset = ", ".join(f"{sum(s.subset == name for s in specs)} {name}" for name in names)
    frames = sum(s.n_frames for s in specs)
    print(
        f"synthesize: {len(specs)} videos ({per_subset}), {syn['num_classes']} classes, "
        f"{frames} frames, {size / 2**20:.1f} MiB -> {ROOT}/"
    )
