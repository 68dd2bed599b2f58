# Inference, per seed: cache per-frame features once with the seed's checkpoints, one job per
# (seed, frame shard), then score every sampling configuration, one job per (seed, configuration
# group: one curve of the figures).


rule features:
    input:
        code=code("features"),
        manifest="data/manifest.csv",
        frames=FRAME_SHARDS,
        teacher=TEACHER,
        student=STUDENT,
    output:
        directory(FEATURE_SHARD),
    wildcard_constraints:
        shard=r"\d+",
    params:
        tracked=tracked("features"),
        shards=len(SHARDS),
    log:
        "logs/features/seed-{seed}/shard-{shard}.log",
    priority: 1
    threads: torch_threads("features")
    resources:
        mem_mb=mem_mb("features"),
        gpu=gpu_resource("features"),
        runtime=240,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp features --params params.yaml --seed {wildcards.seed} --shard {wildcards.shard}/{params.shards} > {log} 2>&1"


rule sweep:
    input:
        code=code("sweep"),
        features=FEATURE_SHARDS,
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        teacher=TEACHER,
        student=STUDENT,
    output:
        directory("results/predictions/seed-{seed}/{group}"),
    wildcard_constraints:
        group="|".join(GROUPS),
    params:
        tracked=tracked("sweep"),
    log:
        "logs/sweep/seed-{seed}/{group}.log",
    threads: torch_threads("sweep")
    resources:
        mem_mb=mem_mb("sweep"),
        gpu=gpu_resource("sweep"),
        runtime=120,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp sweep --params params.yaml --seed {wildcards.seed} --group {wildcards.group} > {log} 2>&1"
