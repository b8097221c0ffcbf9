# Data stage: raw sources (synthesized in synthetic mode, downloaded in paper mode) -> prepared
# datasets (records + shards). A raw source already under data/raw/<source>/ (placed by hand) is used
# as it is.


if config["mode"] == "synthetic":

    # The synthetic stand-in for a download: about a second of work a source, so it runs where
    # Snakemake runs, as the downloads do, instead of waiting in a cluster queue.
    localrules:
        synthesize,

    rule synthesize:
        output:
            directory(f"{RAW}/{{source}}"),
        params:
            **step_params("synthesize"),
            cfg=lambda w: json.dumps(
                {k: config["synthetic"][k] for k in SOURCE_KEYS[w.source]}, sort_keys=True
            ),
        conda:
            ENV
        log:
            f"{LOGS}/synthesize/{{source}}.log",
        benchmark:
            f"{BENCH}/synthesize/{{source}}.tsv"
        resources:
            mem_mb=2000,
            runtime=30,
            cpus_per_task=1,
            **SLURM_SITE,
        shell:
            "{params.step} --params {params.params_file} --source {wildcards.source}"
            " --out {output} > {log} 2>&1"


else:

    # Downloads run where the network is: on the machine running Snakemake, not on compute nodes.
    localrules:
        acquire,

    rule acquire:
        output:
            directory(f"{RAW}/{{source}}"),
        params:
            **step_params("acquire"),
            # no params trigger: what a source holds is fixed by the registry (code) and verified
            # against its pins; mirrors, retries and timeouts change how, not what
            downloads=config["data"]["downloads"],
        conda:
            ENV
        log:
            f"{LOGS}/acquire/{{source}}.log",
        benchmark:
            f"{BENCH}/acquire/{{source}}.tsv"
        resources:
            mem_mb=2000,
            runtime=1440,
            cpus_per_task=1,
        shell:
            "{params.step} --params {params.params_file} --source {wildcards.source}"
            " --downloads {params.downloads} --out {output} > {log} 2>&1"


rule prepare:
    input:
        lambda w: [f"{RAW}/{source}" for source in PREPARED_FROM[w.dataset]],
    output:
        directory(f"{PREPARED}/{{dataset}}"),
    params:
        **step_params("prepare"),
        raw=RAW,
        cfg=section("prepare"),
    conda:
        ENV
    log:
        f"{LOGS}/prepare/{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare/{{dataset}}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=1,
        **SLURM_SITE,
    shell:
        "{params.step} --params {params.params_file} --dataset {wildcards.dataset}"
        " --raw {params.raw} --out {output} > {log} 2>&1"


rule data_all:
    input:
        expand(f"{PREPARED}/{{dataset}}", dataset=DATASETS),
