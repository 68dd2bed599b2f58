"""Prediction files of the sweep (results/predictions/<group>/<config>.npz): write and read.

An .npz holds `video_ids` (str), `labels` (int64 label indices), `scores`
(V, C) float32 video probabilities, per-video distinct frame counts `ns`, `nt`
(int64; 0 where the method does not use that network), the counts the
configuration asks for `ns_nominal`, `nt_nominal` (int64) and each video's cost
`gflops` (float64, distinct frames only). np.savez stamps the
current time into the zip entries, so this writer fixes it to make reruns
byte-identical.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DkpError

FIELDS = ("video_ids", "labels", "scores", "ns", "nt", "ns_nominal", "nt_nominal", "gflops")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp: a constant, not the clock


@dataclass
class Predictions:
    video_ids: np.ndarray  # (V,) str
    labels: np.ndarray  # (V,) int64
    scores: np.ndarray  # (V, C) float32
    ns: np.ndarray  # (V,) int64 distinct student frames the configuration was fed (0 = unused role)
    nt: np.ndarray  # (V,) int64 distinct teacher frames
    # (V,) int64 student frames the configuration asks for (adaptive n_s, fixed ratio*n_t)
    ns_nominal: np.ndarray
    nt_nominal: np.ndarray  # (V,) int64 teacher frames it asks for
    # (V,) float64 cost of this video in GFLOPs (multiply-accumulates), distinct frames only
    gflops: np.ndarray


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Deterministic, uncompressed .npz (readable by np.load). Not atomic: write into an
    atomic_dir."""
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arrays[key]), allow_pickle=False)


def write(path: str | Path, pred: Predictions) -> None:
    save_npz(
        path,
        {
            "video_ids": np.asarray(pred.video_ids, dtype=str),
            "labels": np.asarray(pred.labels, dtype=np.int64),
            "scores": np.asarray(pred.scores, dtype=np.float32),
            "ns": np.asarray(pred.ns, dtype=np.int64),
            "nt": np.asarray(pred.nt, dtype=np.int64),
            "ns_nominal": np.asarray(pred.ns_nominal, dtype=np.int64),
            "nt_nominal": np.asarray(pred.nt_nominal, dtype=np.int64),
            "gflops": np.asarray(pred.gflops, dtype=np.float64),
        },
    )


def read(path: str | Path) -> Predictions:
    """Load one configuration's predictions; DkpError naming the file if it is absent or
    malformed."""
    path = Path(path)
    if not path.exists():
        raise DkpError(f"predictions {path} not found (run `dkp sweep` first)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in FIELDS if f not in z.files]
            if missing:
                raise DkpError(f"{path}: not a dkp prediction file (missing {missing})")
            return Predictions(**{f: z[f] for f in FIELDS})
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DkpError(f"{path}: unreadable prediction file ({exc})") from None


def s3_video_gains(videos: list[dict]) -> dict[str, float]:
    """From the S-3 frames file's rows: per video id, mean DSTE minus mean Student ground-truth
    probability over its frames (videos without frames left out)."""
    out = {}
    for v in videos:
        s, d = np.asarray(v.get("student", []), float), np.asarray(v.get("dste", []), float)
        if s.size and d.size:
            out[str(v["id"])] = float(d.mean() - s.mean())
    return out
