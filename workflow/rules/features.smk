# Frozen-teacher caches, computed once: the SD text-encoder states of every training caption (SDS-CLIP)
# and the CLIP teacher's token features of every labelled example of each CLIP-TD task.


rule cache_text_states:
    input:
        teacher=TEACHER_FOLDER,
        coco=f"{PREPARED}/coco",
    output:
        directory(TEXT_CACHE),
    params:
        **step_params("cache-text-states"),
    threads: 1
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
        gpu=SDS_JOB_GPUS,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --teacher {input.teacher}"
        " --prepared {input.coco} --out {output} --threads {threads} > {log} 2>&1"


rule cache_clip_features:
    input:
        teacher=clip_folder(CTD_TEACHER),
        data=f"{PREPARED}/{{task}}",
    output:
        directory(f"{CLIP_TD_CACHE}/{{task}}"),
    params:
        **step_params("cache-clip-features"),
        cfg=section("clip_td", "teacher"),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/features/clip_td_{CTD_TEACHER}_{{task}}.log",
    benchmark:
        f"{BENCH}/features/clip_td_{CTD_TEACHER}_{{task}}.tsv"
    resources:
        mem_mb=8000,
        runtime=120,
        cpus_per_task=2,
        gpu=CTD_JOB_GPUS,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --task {wildcards.task}"
        " --teacher {input.teacher} --prepared {input.data} --out {output} --threads {threads}"
        " > {log} 2>&1"


rule features_all:
    input:
        TEXT_CACHE,
        # online teacher mode reads no cache
        expand(f"{CLIP_TD_CACHE}/{{task}}", task=CTD["tasks"] if CTD["teacher"]["mode"] == "cached" else []),
