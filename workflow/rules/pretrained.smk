# Pretrained models: trained from scratch in the synthetic world; fetched (published weights) in
# paper mode, on the login node, since compute nodes often have no internet.


if config["mode"] == "synthetic":

    rule pretrain_clip:
        input:
            expand(f"{PREPARED}/{{dataset}}", dataset=CLIP_CORPUS),
        output:
            directory(f"{MODELS}/pretrained/{{clip}}"),
        params:
            **step_params("pretrain-clip"),
            work=f"{WORK}/pretrained/{{clip}}",
            cfg=lambda w: json.dumps(
                [config["models"]["clip"][w.clip], config["pretrain"]["clip"], config["pretrain"]["clip_corpus"],
                 config["pretrain"]["seed"]],
                sort_keys=True,
            ),
        threads: 1
        conda:
            ENV
        log:
            f"{LOGS}/pretrained/{{clip}}.log",
        benchmark:
            f"{BENCH}/pretrained/{{clip}}.tsv"
        resources:
            mem_mb=4000,
            runtime=120,
            cpus_per_task=2,
            **SLURM_SITE,
        shell:
            "{params.step} --params {params.params_file} --name {wildcards.clip}"
            " --prepared {input} --out {output} --work {params.work} --threads {threads} > {log} 2>&1"

    rule pretrain_diffusion:
        input:
            f"{PREPARED}/coco",
        output:
            directory(TEACHER_FOLDER),
        params:
            **step_params("pretrain-diffusion"),
            work=f"{WORK}/pretrained/{TEACHER}",
            cfg=json.dumps([config["models"]["diffusion"]["tiny"], config["pretrain"]["diffusion"],
                            config["pretrain"]["seed"]], sort_keys=True),
        threads: 1
        conda:
            ENV
        log:
            f"{LOGS}/pretrained/{TEACHER}.log",
        benchmark:
            f"{BENCH}/pretrained/{TEACHER}.tsv"
        resources:
            mem_mb=4000,
            runtime=120,
            cpus_per_task=2,
            **SLURM_SITE,
        shell:
            "{params.step} --params {params.params_file} --prepared {input}"
            " --out {output} --work {params.work} --threads {threads} > {log} 2>&1"

    rule pretrain_student:
        input:
            expand(f"{PREPARED}/{{dataset}}", dataset=["coco", *TASKS]),
        output:
            directory(STUDENT_FOLDER),
        params:
            **step_params("pretrain-student"),
            work=f"{WORK}/pretrained/{STUDENT}",
            cfg=json.dumps([config["models"]["student"]["tiny"], config["pretrain"]["student"],
                            config["pretrain"]["student_domains"], config["pretrain"]["seed"]], sort_keys=True),
        threads: 1
        conda:
            ENV
        log:
            f"{LOGS}/pretrained/{STUDENT}.log",
        benchmark:
            f"{BENCH}/pretrained/{STUDENT}.tsv"
        resources:
            mem_mb=4000,
            runtime=120,
            cpus_per_task=2,
            **SLURM_SITE,
        shell:
            "{params.step} --params {params.params_file} --prepared {input}"
            " --out {output} --work {params.work} --threads {threads} > {log} 2>&1"

else:

    localrules:
        fetch_clip,
        fetch_diffusion,
        fetch_student,

    rule fetch_clip:
        output:
            directory(f"{MODELS}/pretrained/{{clip}}"),
        params:
            **step_params("fetch-pretrained"),
            cfg=lambda w: json.dumps(config["models"]["clip"][w.clip], sort_keys=True),
        conda:
            ENV
        log:
            f"{LOGS}/pretrained/{{clip}}.log",
        shell:
            "{params.step} --params {params.params_file} --kind clip"
            " --name {wildcards.clip} --out {output} > {log} 2>&1"

    rule fetch_diffusion:
        output:
            directory(TEACHER_FOLDER),
        params:
            **step_params("fetch-pretrained"),
            cfg=section("models", "diffusion"),
        conda:
            ENV
        log:
            f"{LOGS}/pretrained/{TEACHER}.log",
        shell:
            "{params.step} --params {params.params_file} --kind diffusion"
            " --out {output} > {log} 2>&1"


    rule fetch_student:
        output:
            directory(STUDENT_FOLDER),
        params:
            **step_params("fetch-pretrained"),
            cfg=lambda w: json.dumps({k: config["models"]["student"][k] for k in ("hub_id", "revision")}),
        conda:
            ENV
        log:
            f"{LOGS}/pretrained/{STUDENT}.log",
        shell:
            "{params.step} --params {params.params_file} --kind student"
            " --out {output} > {log} 2>&1"


rule pretrained_all:
    input:
        [clip_folder(name) for name in CLIP_MODELS],
        TEACHER_FOLDER,
        STUDENT_FOLDER,
