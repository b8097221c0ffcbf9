# SDS-CLIP fine-tuning: one job per backbone x lambda x seed. lambda = 0 is the COCO fine-tune control.


rule train_sds_clip:
    input:
        clip=lambda w: clip_folder(w.clip),
        teacher=TEACHER_FOLDER,
        text_cache=TEXT_CACHE,
        coco=f"{PREPARED}/coco",
    output:
        directory(f"{MODELS}/sds_clip/{SDS_RUN}"),
    params:
        **step_params("train-sds-clip", gpus=SDS["gpus"]),
        work=f"{WORK}/sds_clip/{SDS_RUN}",
        cfg=json.dumps({k: SDS[k] for k in ("layernorm_scope", "train", "sds")}, sort_keys=True),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/sds_clip/{SDS_RUN}.log",
    benchmark:
        f"{BENCH}/sds_clip/{SDS_RUN}.tsv"
    resources:
        mem_mb=8000,
        runtime=720,
        cpus_per_task=2 * max(1, SDS["gpus"]),  # 2 per training process
        gpu=SDS["gpus"],
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --lam {wildcards.lam}"
        " --seed {wildcards.seed} --clip {input.clip} --teacher {input.teacher}"
        " --text-cache {input.text_cache} --prepared {input.coco} --out {output}"
        " --work {params.work} --threads {threads} > {log} 2>&1"


rule sds_clip_all:
    input:
        expand(f"{MODELS}/sds_clip/{{run}}", run=SDS_RUNS),
