"""The videos a training stage reads: labels, durations, labelled segments, frames
(memory-mapped)."""

from __future__ import annotations

import resource
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .. import framestore
from ..errors import DkpError


@dataclass
class VideoSet:
    """One subset's usable videos (ok in the manifest and the frame index), sorted by id.

    frames[i]: uint8 (T, H, W, 3) array-like (a memmap from dkp.framestore, through MappedFrames);
    times[i]: float64 (T,) seconds; segments[i]: [[start, end], ...] of the video's label.
    """

    ids: list[str]
    labels: np.ndarray
    durations: np.ndarray
    segments: list[list]
    frames: list
    times: list[np.ndarray]
    offsets: np.ndarray = field(init=False)  # first row of each video in a flat per-frame array

    def __post_init__(self):
        counts = np.array([len(t) for t in self.times], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_frames_total(self) -> int:
        return int(self.offsets[-1])

    def n_frames(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def activity(self, i: int) -> np.ndarray:
        """Indices of the frames inside the video's labelled segments (all frames if none is)."""
        t = self.times[i]
        inside = np.zeros(len(t), dtype=bool)
        for start, end in self.segments[i]:
            inside |= (t >= start) & (t <= end)
        idx = np.flatnonzero(inside)
        return idx if len(idx) else np.arange(len(t))

    def positions(self, i: int, idx: np.ndarray) -> np.ndarray:
        """Frame times as fractions of the video length, in [0, 1]."""
        d = float(self.durations[i])
        return np.clip(self.times[i][idx] / d, 0.0, 1.0) if d > 0 else np.zeros(len(idx))

    def gather(self, pairs, out: np.ndarray | None = None) -> np.ndarray:
        """uint8 (N, H, W, 3) frames for (video, frame index) pairs, in order, into `out` if given.

        Each frame is copied out as soon as it is read, so no view keeps a video's map
        (and its file descriptor) alive after MappedFrames has let it go."""
        pairs = list(pairs)
        if not pairs:
            return np.stack([])  # ValueError, as ever
        if out is None:
            i, j = pairs[0]
            first = self.frames[i][j]
            out = np.empty((len(pairs), *first.shape), dtype=first.dtype)
        for k, (i, j) in enumerate(pairs):
            out[k] = self.frames[i][j]
        return out


class PairFrames:
    """The frames of (video, frame index) pairs of a VideoSet as a uint8 (N, H, W, 3) array-like
    read from the frame store when sliced: the validation frames a stage scores every few epochs
    are streamed through the network a batch at a time (dkp.models.embed_frames), never all held
    in memory (19.7 k frames are 3.0 GB at 224 px)."""

    def __init__(self, videos: VideoSet, pairs: list):
        self.videos, self.pairs = videos, list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("PairFrames is read in slices")
        return self.videos.gather(self.pairs[key])


class MappedFrames:
    """The frames of a list of videos, memory-mapped through dkp.framestore when first read, at
    most `keep` of them mapped at a time (the least recently used is unmapped first).

    Every map holds a file descriptor (numpy's memmap keeps its own), so the number mapped
    at once must stay under `ulimit -n` (often 1024, a tenth of ActivityNet's training set).
    keep defaults to a quarter of the soft limit (the training and validation sets together
    take at most half): a set that fits keeps every map, a larger one re-maps on a miss.
    """

    def __init__(self, p: dict, ids: list[str], keep: int | None = None):
        if keep is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            keep = len(ids) if soft == resource.RLIM_INFINITY or soft < 0 else max(8, soft // 4)
        self._p, self._ids, self._keep = p, list(ids), keep
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i: int) -> np.ndarray:
        frames = self._open.get(i)
        if frames is None:
            frames = framestore.load(self._p, self._ids[i])[0]
            self._open[i] = frames
            if len(self._open) > self._keep:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(i)
        return frames


def monitor_subset(p: dict) -> str:
    """The subset the per-epoch training logs score: data.tune_subset, or data.val_subset without
    one."""
    return p["data"]["tune_subset"] or p["data"]["val_subset"]


def load_subset(p: dict, subset: str, num_classes: int) -> VideoSet:
    """The usable videos of one subset, read through dkp.framestore."""
    videos = framestore.available(p, subset)
    if videos.empty:
        raise DkpError(
            f"no usable video in subset {subset!r} (ok in data/manifest.csv and with extracted "
            f"frames): run `dkp data` and `dkp frames` first, or check data.train_subset/val_subset"
        )
    labels = videos["label_index"].to_numpy(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DkpError(
            f"subset {subset!r}: label_index outside 0..{num_classes - 1} (rerun `dkp data`)"
        )
    ids = [str(v) for v in videos["id"]]
    times = []
    for vid in ids:
        f, t = framestore.load(p, vid)  # checked once here, mapped again when read (MappedFrames)
        if len(f) != len(t) or len(f) == 0:
            raise DkpError(
                f"frames of {vid}: {len(f)} frames but {len(t)} timestamps (rerun `dkp frames`)"
            )
        del f
        times.append(np.asarray(t, dtype=np.float64))
    return VideoSet(
        ids=ids,
        labels=labels,
        durations=videos["duration"].to_numpy(np.float64),
        segments=[list(s) for s in videos["segments"]],
        frames=MappedFrames(p, ids),
        times=times,
    )
