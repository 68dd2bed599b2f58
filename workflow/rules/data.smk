# Data: generate (or mark) the raw videos, ingest the annotations, extract frames per shard.


rule synthesize:
    input:
        code=code("synthesize"),
    output:
        directory("data/synthetic"),
    params:
        tracked=tracked("synthesize"),
    log:
        "logs/synthesize.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp synthesize --params params.yaml > {log} 2>&1"


rule data:
    input:
        code=code("data"),
        raw=raw_data(),
    output:
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        skipped="data/skipped.csv",
    params:
        tracked=tracked("data"),
    log:
        "logs/data.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp data --params params.yaml > {log} 2>&1"


rule frames:
    input:
        code=code("frames"),
        manifest="data/manifest.csv",
        videos=videos(),
    output:
        directory("data/frames/shard-{shard}"),
    wildcard_constraints:
        shard=r"\d+",
    params:
        tracked=tracked("frames"),
        shards=len(SHARDS),
    log:
        "logs/frames/shard-{shard}.log",
    threads: config["frames"]["workers"]
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp frames --params params.yaml --shard {wildcards.shard}/{params.shards} > {log} 2>&1"


rule data_report:
    input:
        code=code("data-report"),
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        skipped="data/skipped.csv",
        frames=FRAME_SHARDS,
    output:
        "results/data_report.json",
    params:
        tracked=tracked("data-report"),
    log:
        "logs/data_report.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp data-report --params params.yaml > {log} 2>&1"
