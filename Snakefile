# The pipeline as Snakemake runs it: the same stages and commands as dvc.yaml, with training,
# features and sweep one job per seed of run.seeds (DVC's foreach stages), frame extraction
# fanned out per shard and the sweep also per configuration group, for parallel and
# cluster runs. Local: `snakemake --profile workflow/profiles/default`; Slurm:
# `snakemake --profile workflow/profiles/slurm`; then `dvc commit -f` records the outputs.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "params.yaml"


validate(config, "src/dkp/params.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    seed="|".join(str(s) for s in SEEDS),


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/data_report.json",
        "results/curves.csv",
        "results/metrics.json",
        "results/anet",
        "results/figures",
        "results/claims.json",
        "results/README.md",
