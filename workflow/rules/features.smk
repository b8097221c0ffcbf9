# Frozen-teacher caches: the SD text-encoder states of every training caption, computed once.


rule cache_text_states:
    input:
        teacher=TEACHER_FOLDER,
        coco=f"{PREPARED}/coco",
    output:
        directory(TEXT_CACHE),
    params:
        **STEP_PARAMS,
    threads: 2
    conda:
        ENV
    log:
        f"{LOGS}/features/sd_text_{TEACHER}.log",
    benchmark:
        f"{BENCH}/features/sd_text_{TEACHER}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
        cpus_per_task=2,
        gpu=config["sds_clip"]["gpus"],
    shell:
        "{params.step} cache-text-states --params {params.params_file} --teacher {input.teacher}"
        " --prepared {input.coco} --out {output} --threads {threads} > {log} 2>&1"


rule features_all:
    input:
        TEXT_CACHE,
