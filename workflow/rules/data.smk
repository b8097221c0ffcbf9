# Data stage: raw sources (synthesized in synthetic mode) -> prepared datasets (records + shards).
# In paper mode, raw sources are the extracted real datasets under data/raw/<source>/ (see README).


if config["mode"] == "synthetic":

    rule synthesize:
        output:
            directory(f"{RAW}/{{source}}"),
        params:
            **STEP_PARAMS,
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
        shell:
            "{params.step} synthesize --params {params.params_file} --source {wildcards.source}"
            " --out {output} > {log} 2>&1"


rule prepare:
    input:
        lambda w: [f"{RAW}/{source}" for source in PREPARED_FROM[w.dataset]],
    output:
        directory(f"{PREPARED}/{{dataset}}"),
    params:
        **STEP_PARAMS,
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
    shell:
        "{params.step} prepare --params {params.params_file} --dataset {wildcards.dataset}"
        " --raw {params.raw} --out {output} > {log} 2>&1"


rule data_all:
    input:
        expand(f"{PREPARED}/{{dataset}}", dataset=PREPARED_DATASETS),
