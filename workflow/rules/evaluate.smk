# Evaluation: every trained SDS-CLIP run and each untouched base CLIP (run name base-<backbone>) on
# Winoground, ARO, SugarCrepe and zero-shot; and the diffusion teacher's own Winoground score.


rule evaluate_clip:
    input:
        model=model_of_run,
        data=expand(f"{PREPARED}/{{dataset}}", dataset=EVAL_DATASETS),
    output:
        directory(f"{RESULTS}/metrics/sds_clip/{{run}}"),
    params:
        **STEP_PARAMS,
        cfg=section("evaluate"),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/evaluate/{{run}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{run}}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=1,
    shell:
        "{params.step} evaluate-clip --params {params.params_file} --model {input.model}"
        " --prepared {input.data} --out {output} --threads {threads} > {log} 2>&1"


rule teacher_score:
    input:
        teacher=TEACHER_FOLDER,
        data=f"{PREPARED}/winoground",
    output:
        f"{RESULTS}/metrics/teacher/{TEACHER}/winoground_diffusion.json",
    params:
        **STEP_PARAMS,
        cfg=section("evaluate"),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/evaluate/teacher_{TEACHER}.log",
    benchmark:
        f"{BENCH}/evaluate/teacher_{TEACHER}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=1,
        gpu=SDS["gpus"],
    shell:
        "{params.step} teacher-score --params {params.params_file} --teacher {input.teacher}"
        " --prepared {input.data} --out {output} --threads {threads} > {log} 2>&1"


rule evaluate_all:
    input:
        expand(f"{RESULTS}/metrics/sds_clip/{{run}}", run=EVAL_RUNS),
        rules.teacher_score.output,
