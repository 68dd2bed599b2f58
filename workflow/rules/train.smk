# Training: the teacher on few frames, then the student with DKP and the ensemble gate.
# GPUs are requested by the Slurm profile (set-resources), not here.


rule train_teacher:
    input:
        code=code("train-teacher"),
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        frames=FRAME_SHARDS,
    output:
        model="models/teacher.pt",
        log_csv="results/train/teacher.csv",
    params:
        tracked=tracked("train-teacher"),
    log:
        "logs/train_teacher.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=8000,
        runtime=480,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp train-teacher --params params.yaml > {log} 2>&1"


rule train_student:
    input:
        code=code("train-student"),
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        frames=FRAME_SHARDS,
        teacher="models/teacher.pt",
    output:
        model="models/student.pt",
        log_csv="results/train/student.csv",
    params:
        tracked=tracked("train-student"),
    log:
        "logs/train_student.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=8000,
        runtime=480,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp train-student --params params.yaml > {log} 2>&1"
