"""Figure S-3: for two validation videos, a strip of input frames over the per-frame
ground-truth probability of Student and DSTE against time, activity segments shaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import configs, framestore, layout
from ..errors import DkpError
from ..predictions import s3_video_gains
from . import output

PANEL_LETTERS = "abcdefgh"


def frames_json_path(p: dict) -> Path:
    """The first seed's results/predictions/seed-N/<group>/<sweep.s3_config>.frames.json."""
    name = p["sweep"]["s3_config"]
    return layout.s3_frames_file(p["run"]["seeds"][0], configs.by_name(p)[name].group, name)


def load_videos(path: str | Path) -> list[dict]:
    """The per-video records of a frames.json (a list, or {'videos': [...]}), sorted by id."""
    path = Path(path)
    if not path.exists():
        raise DkpError(
            f"{path} not found: run `dkp sweep` first (it writes the S-3 configuration's "
            "frames.json)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DkpError(f"{path}: not valid JSON ({exc})") from None
    videos = data.get("videos") if isinstance(data, dict) else data
    if not isinstance(videos, list):
        raise DkpError(f"{path}: expected a list of per-video records")
    for v in videos:
        missing = [k for k in ("id", "times", "student", "dste") if k not in v]
        if missing:
            raise DkpError(f"{path}: video record {v.get('id', '?')!r} lacks {missing}")
        if not len(v["times"]) == len(v["student"]) == len(v["dste"]):
            raise DkpError(f"{path}: video {v['id']!r}: times, student and dste differ in length")
    return sorted(videos, key=lambda v: str(v["id"]))


RULE = (
    "the classes ranked by the mean over their videos of the DSTE gain (a video's mean DSTE minus "
    "mean Student probability of the ground-truth class); (a) the top class, (b) the median-ranked "
    "class (rank floor((K - 1) / 2) of K from the top, at least 1); in each class the video at the "
    "lower median of its videos' gains"
)


def rule_text(p: dict) -> str:
    """How the S-3 videos were chosen, for the caption."""
    if p["figures"]["s3_videos"]:
        return "by hand in `figures.s3_videos`"
    return f"by the rule of docs/method.md 11 on seed {p['run']['seeds'][0]}'s predictions: {RULE}"


def _class_key(video: dict):
    idx = video.get("label_index")
    return idx if isinstance(idx, int) else str(video.get("label", ""))


def select(videos: list[dict], ids: list[str] | None) -> list[dict]:
    """The explicit ids (figures.s3_videos), or one typical video of each of two classes (RULE):
    the class where DSTE gains most over Student on average and the median-ranked class, each
    represented by its video at the lower median gain. Ties break by class and video id. Each
    returned record is a copy with "reason", a short note of why it was chosen."""
    by_id = {str(v["id"]): v for v in videos}
    if ids:
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise DkpError(
                f"figures.s3_videos: {unknown} not among the {len(by_id)} videos of the S-3 "
                f"predictions (e.g. {sorted(by_id)[:3]})"
            )
        return [{**by_id[i], "reason": "chosen in figures.s3_videos"} for i in ids]
    gains = s3_video_gains(videos)
    members: dict = {}
    for k in sorted(gains):
        members.setdefault(_class_key(by_id[k]), []).append(k)
    if not members:
        return []
    mean = {c: float(np.mean([gains[k] for k in ks])) for c, ks in members.items()}
    ranked = sorted(mean, key=lambda c: (-mean[c], str(c)))
    picks = [0] if len(ranked) == 1 else [0, max(1, (len(ranked) - 1) // 2)]
    out = []
    for r in picks:
        ks = sorted(members[ranked[r]], key=lambda k: (gains[k], k))
        k = ks[(len(ks) - 1) // 2]
        out.append(
            {
                **by_id[k],
                "reason": f"class ranked {r + 1} of {len(ranked)} by mean DSTE gain "
                f"({mean[ranked[r]]:+.3f}), its median video (gain {gains[k]:+.3f})",
            }
        )
    return out


def class_name(video: dict, classes: list[str]) -> str:
    label = video.get("label")
    if isinstance(label, str) and label:
        return label
    idx = video.get("label_index")
    if isinstance(idx, int) and 0 <= idx < len(classes):
        return classes[idx]
    return f"class {idx}"


def strip_indices(times: np.ndarray, duration: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k frames for k equal time bins over [0, duration]: the frame nearest each bin's centre.

    Returns (frame indices, bin edges); the strip then lines up with the time axis below it.
    """
    edges = np.linspace(0.0, duration, k + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    idx = np.abs(np.asarray(times, float)[None, :] - centres[:, None]).argmin(axis=1)
    return idx, edges


def _load_frames(p: dict, video_id: str):
    try:
        frames, times = framestore.load(p, video_id)
    except (DkpError, OSError, KeyError, ValueError) as exc:
        raise DkpError(f"Figure S-3: cannot read the frames of video {video_id!r}: {exc}") from None
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[0] != len(times):
        raise DkpError(
            f"Figure S-3: video {video_id!r} has frames of shape {tuple(frames.shape)} and "
            f"{len(times)} timestamps; expected (T>0, H, W, 3) and T timestamps (rerun dkp frames)"
        )
    return frames, np.asarray(times, float)  # frames stay memory-mapped: only the strip's are read


# layout in inches, full width
_LEFT, _RIGHT, _TITLE, _GAP, _PLOT, _XLAB = 0.55, 0.12, 0.26, 0.06, 1.2, 0.42


def _strip_height(frames: np.ndarray, k: int) -> float:
    h, w = frames.shape[1:3]
    return (output.FULL_WIDTH - _LEFT - _RIGHT) / k * h / w


def render(p: dict, chosen: list[dict], classes: list[str], stem: str | Path) -> list[Path]:
    """Figure S-3 written as <stem>.png and .pdf."""
    if not chosen:
        raise DkpError("Figure S-3: the S-3 predictions hold no video with frames")
    loaded = [_load_frames(p, str(v["id"])) for v in chosen]
    with output.style():
        return output.save(figure(p, chosen, loaded, classes), stem, p["figures"]["dpi"])


def figure(p: dict, chosen: list[dict], loaded: list, classes: list[str]):
    """One panel per chosen video (loaded: its (frames, times)): frame strip on top,
    probabilities below; '(a) <class name>' titles. Call inside output.style()."""
    import matplotlib.pyplot as plt

    k = p["figures"]["strip_frames"]
    heights = [_TITLE + _strip_height(f, k) + _GAP + _PLOT + _XLAB for f, _ in loaded]
    width, total = output.FULL_WIDTH, sum(heights)
    aw = (width - _LEFT - _RIGHT) / width
    fig = plt.figure(figsize=(width, total))
    top = total
    for i, (video, (frames, ftimes)) in enumerate(zip(chosen, loaded)):
        sh = _strip_height(frames, k)
        times = np.asarray(video["times"], float)
        duration = float(video.get("duration") or max(times.max(initial=0), ftimes.max(initial=0)))
        y_strip = top - _TITLE - sh
        ax_s = fig.add_axes((_LEFT / width, y_strip / total, aw, sh / total))
        idx, edges = strip_indices(ftimes, duration, k)
        ax_s.imshow(
            np.concatenate([frames[j] for j in idx], axis=1),
            extent=(0, duration, 0, 1),
            aspect="auto",
            interpolation="antialiased",
        )
        for e in edges[1:-1]:  # thin gaps between thumbnails
            ax_s.axvline(e, color="white", linewidth=1.2)
        ax_s.set_xlim(0, duration)
        ax_s.set_axis_off()
        ax_s.set_title(
            f"({PANEL_LETTERS[i]}) {class_name(video, classes)}", fontsize=8, pad=3, loc="left"
        )
        y_plot = y_strip - _GAP - _PLOT
        ax = fig.add_axes((_LEFT / width, y_plot / total, aw, _PLOT / total))
        for j, (s, e) in enumerate(video.get("segments") or []):
            ax.axvspan(s, e, color="0.85", zorder=0, label="labelled activity" if j == 0 else None)
        for key, color, marker, label in (
            ("student", "C1", "o", "Student"),
            ("dste", "C0", "s", "DSTE"),
        ):
            ax.plot(
                times,
                video[key],
                color=color,
                marker=marker,
                markersize=2.2,
                linewidth=1.0,
                label=label,
            )
        ax.set_xlim(0, duration)
        ax.set_ylim(-0.02, 1.02)
        reason = f"; {video['reason']}" if video.get("reason") else ""
        ax.set_xlabel(f"time (s) in video {video['id']}{reason}")
        ax.set_ylabel("p(ground-truth class)")
        ax.grid(True, axis="y")
        # legend in the title row, right: inside the plot it would hide probabilities
        handles, names = ax.get_legend_handles_labels()
        ax_s.legend(
            handles,
            names,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncol=3,
            frameon=False,
            borderaxespad=0.1,
            handlelength=1.8,
            columnspacing=1.2,
        )
        top = y_plot - _XLAB
    return fig
