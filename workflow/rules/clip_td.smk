# CLIP-TD: fine-tune the VL student on a task, one job per task x setting x method x seed.
# Methods are configurations of one code path (clip_td.methods): finetune, naive, targeted.


rule train_clip_td:
    input:
        unpack(clip_td_teacher_inputs),
        student=STUDENT_FOLDER,
        data=f"{PREPARED}/{{task}}",
        splits=f"{SPLITS}/{{task}}",
    output:
        directory(f"{MODELS}/clip_td/{CTD_RUN}"),
    params:
        **step_params("train-clip-td", gpus=CTD["gpus"]),
        split=clip_td_split_file,
        teacher=teacher_args,
        work=f"{WORK}/clip_td/{CTD_RUN}",
        cfg=lambda w: json.dumps(clip_td_run_config(w.task, w.method), sort_keys=True),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/clip_td/{CTD_RUN}.log",
    benchmark:
        f"{BENCH}/clip_td/{CTD_RUN}.tsv"
    resources:
        mem_mb=8000,
        runtime=720,
        cpus_per_task=2 * max(1, CTD["gpus"]),  # 2 per training process
        gpu=CTD["gpus"],
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --task {wildcards.task}"
        " --method {wildcards.method} --seed {wildcards.seed} --student {input.student}"
        " --prepared {input.data} --split {params.split} {params.teacher} --out {output}"
        " --work {params.work} --threads {threads} > {log} 2>&1"


rule clip_td_all:
    input:
        expand(f"{MODELS}/clip_td/{{run}}", run=CLIP_TD_RUNS),
