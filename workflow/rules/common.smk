# Helpers shared by the rule files. The code and parameter keys each rule depends on are read
# from dvc.yaml, so both runners invalidate the same jobs: a rule's `params: tracked=...` holds
# the values of exactly the keys its DVC stage lists, and Snakemake's params rerun trigger
# reruns the job when one of them changes (as `dvc status` would report it). Each DVC foreach
# stage (one per seed) runs here as jobs of a {seed} wildcard; its `do:` entry lists the same
# code and keys for every seed, and the seed itself is in each job's outputs and command.
import glob
import json
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError

import dkp.configs
import dkp.params
from dkp.errors import ParamError

# dkp stages read params.yaml itself; a --config override would silently not reach them.
with open("params.yaml") as _fh:
    if yaml.safe_load(_fh) != config:
        raise WorkflowError("the Snakemake config differs from params.yaml: edit params.yaml instead of "
                         "passing --config/--configfile (the dkp stages read params.yaml)")
try:  # cross-key rules the JSON schema cannot say (same check as `dkp validate-params`)
    dkp.params.validate(config, check_paths=False)
except ParamError as _exc:
    raise WorkflowError(f"params.yaml: {_exc}") from None

with open("dvc.yaml") as _fh:
    DVC_STAGES = yaml.safe_load(_fh)["stages"]

SHARDS = list(range(config["frames"]["shards"]))
SEEDS = config["run"]["seeds"]
GROUPS = dkp.configs.groups(config)
FRAME_SHARDS = expand("data/frames/shard-{shard}", shard=SHARDS)
# per-seed paths, as dkp.layout names them
TEACHER = "models/seed-{seed}/teacher.pt"
STUDENT = "models/seed-{seed}/student.pt"
FEATURE_SHARD = "data/features/seed-{seed}/shard-{shard}"
FEATURE_SHARDS = expand(FEATURE_SHARD, shard=SHARDS, allow_missing=True)
PREDICTIONS = expand("results/predictions/seed-{seed}/{group}", seed=SEEDS, group=GROUPS)
CHECKPOINTS = expand(TEACHER, seed=SEEDS) + expand(STUDENT, seed=SEEDS)
SYNTHETIC = "data/synthetic"


def _stage(name):
    """A dvc.yaml stage's entry; for a foreach stage, its `do:` template."""
    entry = DVC_STAGES[name]
    return entry.get("do", entry)


def code(stage):
    """The stage's source files (its src/ deps in dvc.yaml, folders expanded to their .py files)."""
    files = []
    for dep in _stage(stage)["deps"]:
        if dep.startswith("src/"):
            files += sorted(glob.glob(f"{dep}/**/*.py", recursive=True)) if Path(dep).is_dir() else [dep]
    return files


def _lookup(key):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def tracked(stage):
    """The values of the parameter keys the stage's dvc.yaml entry lists, as one JSON string."""
    return json.dumps({k: _lookup(k) for k in _stage(stage)["params"]}, sort_keys=True)


def raw_data():
    """The data stage's inputs: the generator's folder for synthetic data (which holds
    data.annotations and data.videos), else the configured paths. For a real source the
    folder holds only synthesize's marker; asking for it keeps `rule all` producing every
    dvc.yaml output, so `dvc commit -f` finds them all."""
    if config["data"]["source"] == "synthetic":
        return [SYNTHETIC]
    return [SYNTHETIC, config["data"]["annotations"], config["data"]["videos"]]


def videos():
    """Where the frames stage reads the videos from (see raw_data)."""
    return SYNTHETIC if config["data"]["source"] == "synthetic" else config["data"]["videos"]
