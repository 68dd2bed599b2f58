# Helpers shared by the rule files. The code and parameter keys each rule depends on are read
# from dvc.yaml, so both runners invalidate the same jobs: a rule's `params: tracked=...` holds
# the values of exactly the keys its DVC stage lists, and Snakemake's params rerun trigger
# reruns the job when one of them changes (as `dvc status` would report it). Each DVC foreach
# stage (one per seed) runs here as jobs of a {seed} wildcard; its `do:` entry lists the same
# code and keys for every seed, and the seed itself is in each job's outputs and command.
import glob
import json
import math
import os
import re
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError

import dkp.configs
import dkp.gpus
import dkp.params
import dkp.resources
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


# ---- resources of the torch jobs ---------------------------------------------------------------
# Each torch rule asks for GPUs (`gpu`), threads and memory that follow its ranks and the data.
# `--set-resources RULE:gpu=N` (or, for several nodes, RULE:nodes=M RULE:gres=gpu:N, N a node)
# changes the GPUs, and threads and mem_mb follow; `--set-resources RULE:mem_mb=...` replaces the
# computed memory. Snakemake's default-resources never reach these rules: they set their own.
TORCH_RULES = {"train_teacher": "train-teacher", "train_student": "train-student",
               "features": "features", "sweep": "sweep"}
DEFAULT_GPUS = {"train_teacher": 1, "train_student": 1, "features": 1, "sweep": 1}


def _override(rule, name):
    """A resource given to `rule` by --set-resources (command line or profile), else None."""
    value = workflow.resource_settings.overwrite_resources.get(rule, {}).get(name)
    return getattr(value, "value", value)


def nodes(rule):
    return int(_override(rule, "nodes") or 1)


def gpus_per_node(rule):
    """GPUs a node of the job gets: `gres` gpu:N (per node), else `gpu` (the job's) over its nodes."""
    gres = re.fullmatch(r"gpu(?::[^:]+)?:(\d+)", str(_override(rule, "gres") or ""))
    if gres:
        return int(gres.group(1))
    gpu = _override(rule, "gpu")
    return math.ceil(int(gpu) / nodes(rule)) if gpu is not None else DEFAULT_GPUS[rule]


def gpu_resource(rule):
    """The rule's `gpu` resource: none where gres already asks for the GPUs."""
    gpu = _override(rule, "gpu")
    if gpu is not None:
        return int(gpu)
    return 0 if _override(rule, "gres") else DEFAULT_GPUS[rule]


def on_gpus(rule):
    """Whether the job's networks run on GPUs: it has some, run.device allows them, and a local
    run's machine has them (a cluster's compute nodes are not the submit node)."""
    return (gpus_per_node(rule) > 0 and config["run"]["device"] != "cpu"
            and (not workflow.local_exec or bool(dkp.gpus.machine_gpus())))


def ranks(rule):
    """Training processes on a node: one per GPU, else one."""
    return gpus_per_node(rule) if on_gpus(rule) and rule.startswith("train") else 1


def torch_threads(rule):
    """CPU cores a node of the job uses: each rank's run.threads, and its loader workers."""
    workers = config["train"]["loader"]["workers"] if rule.startswith("train") else 0
    return ranks(rule) * (config["run"]["threads"] + workers)


def mem_mb(rule):
    """mem_mb from params.yaml and data/manifest.csv (dkp.resources.rule_mem_mb), a node's worth;
    evaluated when the job is ready, once `dkp data` has written the manifest."""
    def compute(wildcards, input):
        return dkp.resources.rule_mem_mb(config, TORCH_RULES[rule], input.manifest, ranks(rule), on_gpus(rule))
    return compute


# Local runs: each torch job takes its rule's number of GPUs of the machine before torch starts
# (dkp.gpus); `--resources gpu=N` (the machine's N GPUs) keeps them from waiting for one another.
os.environ[dkp.gpus.ENV] = json.dumps({TORCH_RULES[r]: gpus_per_node(r) for r in TORCH_RULES})
