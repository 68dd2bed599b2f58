# Training: the teacher on few frames, then the student with DKP and the ensemble gate,
# one job per seed of run.seeds (seed N's student learns from seed N's teacher).
# GPUs are requested by the Slurm profile (set-resources), not here.


rule train_teacher:
    input:
        code=code("train-teacher"),
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        frames=FRAME_SHARDS,
    output:
        model=TEACHER,
        log_csv="results/train/seed-{seed}/teacher.csv",
    params:
        tracked=tracked("train-teacher"),
    log:
        "logs/train_teacher/seed-{seed}.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=8000,
        runtime=480,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp train-teacher --params params.yaml --seed {wildcards.seed} > {log} 2>&1"


rule train_student:
    input:
        code=code("train-student"),
        manifest="data/manifest.csv",
        classes="data/classes.txt",
        frames=FRAME_SHARDS,
        teacher=TEACHER,
    output:
        model=STUDENT,
        log_csv="results/train/seed-{seed}/student.csv",
    params:
        tracked=tracked("train-student"),
    log:
        "logs/train_student/seed-{seed}.log",
    threads: config["run"]["threads"]
    resources:
        mem_mb=8000,
        runtime=480,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp train-student --params params.yaml --seed {wildcards.seed} > {log} 2>&1"
