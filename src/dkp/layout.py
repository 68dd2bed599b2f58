"""Where every artifact lives, relative to the project root: the one home of these paths.

Stages that run once per seed (training, features, sweep) keep each seed's outputs in a
`seed-<n>` folder, so DVC's foreach stages and Snakemake's {seed} jobs never share a path.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
RESULTS = Path("results")

SYNTHETIC = DATA / "synthetic"
MANIFEST = DATA / "manifest.csv"
CLASSES = DATA / "classes.txt"
SKIPPED = DATA / "skipped.csv"
FRAMES = DATA / "frames"

DATA_REPORT = RESULTS / "data_report.json"
CURVES = RESULTS / "curves.csv"
METRICS = RESULTS / "metrics.json"
BOOTSTRAP = RESULTS / "bootstrap.npz"
ANET = RESULTS / "anet"
FIGURES = RESULTS / "figures"
REPORT = RESULTS / "README.md"
CLAIMS = RESULTS / "claims.json"
TRAIN_CACHE = Path(".dkp-cache") / "train"


def seed_dir(seed: int) -> str:
    return f"seed-{int(seed)}"


def teacher_checkpoint(seed: int) -> Path:
    return MODELS / seed_dir(seed) / "teacher.pt"


def student_checkpoint(seed: int) -> Path:
    return MODELS / seed_dir(seed) / "student.pt"


def train_log(stage: str, seed: int) -> Path:
    """Per-epoch log of a training stage ('teacher' or 'student')."""
    return RESULTS / "train" / seed_dir(seed) / f"{stage}.csv"


def features_dir(seed: int) -> Path:
    return DATA / "features" / seed_dir(seed)


def shard_name(shard: int) -> str:
    """The folder of a shard, in the frame store and in each seed's feature cache."""
    return f"shard-{int(shard)}"


def frames_shard_dir(shard: int) -> Path:
    return FRAMES / shard_name(shard)


def features_shard_dir(seed: int, shard: int) -> Path:
    """The features of the videos whose frames are in frame shard `shard`."""
    return features_dir(seed) / shard_name(shard)


def predictions_dir(seed: int) -> Path:
    return RESULTS / "predictions" / seed_dir(seed)


def predictions_file(seed: int, group: str, name: str) -> Path:
    return predictions_dir(seed) / group / f"{name}.npz"


def s3_frames_file(seed: int, group: str, name: str) -> Path:
    """Per-frame probabilities of the S-3 configuration, written beside its predictions."""
    return predictions_dir(seed) / group / f"{name}.frames.json"
