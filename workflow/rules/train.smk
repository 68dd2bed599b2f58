# Training: the teacher on few frames, then the student with DKP and the ensemble gate,
# one job per seed of run.seeds (seed N's student learns from seed N's teacher).
# Threads, memory and GPUs follow the ranks and the data (common.smk, "resources of the torch jobs").
# Priorities: of the jobs ready at once, the longest chain to the end goes first (a teacher, then
# a student, then features), so that on two cores the last seed's chain does not wait.


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
    priority: 3
    threads: torch_threads("train_teacher")
    resources:
        mem_mb=mem_mb("train_teacher"),
        gpu=gpu_resource("train_teacher"),
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
    priority: 2
    threads: torch_threads("train_student")
    resources:
        mem_mb=mem_mb("train_student"),
        gpu=gpu_resource("train_student"),
        runtime=480,
    conda:
        "../envs/dkp.yaml"
    shell:
        "dkp train-student --params params.yaml --seed {wildcards.seed} > {log} 2>&1"
