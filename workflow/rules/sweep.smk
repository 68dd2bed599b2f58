# Inference: cache per-frame features once, then score every sampling configuration,
# one job per configuration group (one curve of the figures).


rule features:
    input:
        code=code("features"),
        manifest="data/manifest.csv",
        frames=FRAME_SHARDS,
        teacher="models/teacher.pt",
        student="models/student.pt",
    output:
        directory("data/features"),
    params:
        tracked=tracked("features"),
    log:
        "logs/features.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp features --params params.yaml > {log} 2>&1"


rule sweep:
    input:
        code=code("sweep"),
        features="data/features",
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        teacher="models/teacher.pt",
        student="models/student.pt",
    output:
        directory("results/predictions/{group}"),
    wildcard_constraints:
        group="|".join(GROUPS),
    params:
        tracked=tracked("sweep"),
    log:
        "logs/sweep/{group}.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp sweep --params params.yaml --group {wildcards.group} > {log} 2>&1"
