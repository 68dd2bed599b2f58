# Results: score the predictions (curves, metrics), then the figures and the results README.


rule evaluate:
    input:
        code=code("evaluate"),
        predictions=PREDICTIONS,
        data_report="results/data_report.json",
        classes="data/classes.txt",
    output:
        curves="results/curves.csv",
        metrics="results/metrics.json",
        bootstrap="results/bootstrap.npz",
        anet=directory("results/anet"),
    params:
        tracked=tracked("evaluate"),
    log:
        "logs/evaluate.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp evaluate --params params.yaml > {log} 2>&1"


rule figures:
    input:
        code=code("figures"),
        curves="results/curves.csv",
        bootstrap="results/bootstrap.npz",
        metrics="results/metrics.json",
        data_report="results/data_report.json",
        predictions=PREDICTIONS,
        frames=FRAME_SHARDS,
        classes="data/classes.txt",
    output:
        figures=report(
            directory("results/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
        claims="results/claims.json",
        readme=report("results/README.md", caption="../report/readme.rst", category="Report"),
    params:
        tracked=tracked("figures"),
    log:
        "logs/figures.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp figures --params params.yaml > {log} 2>&1"
