# Splits stage: low-shot (fraction x seed, nested, stratified) and domain-shift splits per task.


rule splits:
    input:
        f"{PREPARED}/{{task}}",
    output:
        directory(f"{SPLITS}/{{task}}"),
    params:
        **step_params("splits"),
        cfg=section("splits"),
    conda:
        ENV
    log:
        f"{LOGS}/splits/{{task}}.log",
    benchmark:
        f"{BENCH}/splits/{{task}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=1,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --dataset {wildcards.task} --prepared {input}"
        " --out {output} > {log} 2>&1"


rule splits_summary:
    input:
        expand(f"{SPLITS}/{{task}}", task=TASKS),
    output:
        csv=f"{SPLITS}/summary.csv",
        md=f"{SPLITS}/summary.md",
    params:
        **step_params("splits-summary"),
    conda:
        ENV
    log:
        f"{LOGS}/splits/summary.log",
    benchmark:
        f"{BENCH}/splits/summary.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
        cpus_per_task=1,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} {input} --csv {output.csv}"
        " --markdown {output.md} > {log} 2>&1"


rule splits_all:
    input:
        expand(f"{SPLITS}/{{task}}", task=TASKS),
        rules.splits_summary.output,
