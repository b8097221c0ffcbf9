# Evaluation: every trained SDS-CLIP run and each untouched base CLIP (run name base-<backbone>) on
# Winoground, ARO, SugarCrepe and zero-shot; the diffusion teacher's own Winoground score; and every
# CLIP-TD run on the evaluation ids of its split (from the predictions its training job wrote).


rule evaluate_clip:
    input:
        model=model_of_run,
        data=expand(f"{PREPARED}/{{dataset}}", dataset=EVAL_DATASETS),
    output:
        directory(f"{RESULTS}/metrics/sds_clip/{{run}}"),
    params:
        **step_params("evaluate-clip"),
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
        gpu=SDS_JOB_GPUS,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --model {input.model}"
        " --prepared {input.data} --out {output} --threads {threads} > {log} 2>&1"


rule teacher_score:
    input:
        teacher=TEACHER_FOLDER,
        data=f"{PREPARED}/winoground",
    output:
        f"{RESULTS}/metrics/teacher/{TEACHER}/winoground_diffusion.json",
    params:
        **step_params("teacher-score"),
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
        gpu=SDS_JOB_GPUS,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --teacher {input.teacher}"
        " --prepared {input.data} --out {output} --threads {threads} > {log} 2>&1"


rule evaluate_clip_td:
    input:
        model=f"{MODELS}/clip_td/{CTD_RUN}",
        data=f"{PREPARED}/{{task}}",
        splits=f"{SPLITS}/{{task}}",
    output:
        f"{RESULTS}/metrics/clip_td/{CTD_RUN}.json",
    params:
        **step_params("evaluate-clip-td"),
        split=clip_td_split_file,
        cfg=section("evaluate"),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/evaluate/clip_td/{CTD_RUN}.log",
    benchmark:
        f"{BENCH}/evaluate/clip_td/{CTD_RUN}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
        cpus_per_task=1,
        **SLURM_SITE,
    shell:
        # scores the predictions the training job wrote: numpy only, no model, no GPU
        "{params.step} --params {params.params_file} --model {input.model}"
        " --prepared {input.data} --split {params.split} --out {output} > {log} 2>&1"


rule evaluate_all:
    input:
        expand(f"{RESULTS}/metrics/sds_clip/{{run}}", run=EVAL_RUNS),
        rules.teacher_score.output,
        expand(f"{RESULTS}/metrics/clip_td/{{run}}.json", run=CLIP_TD_RUNS),
