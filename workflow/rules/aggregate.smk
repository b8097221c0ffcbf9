# The end of the DAG: every run's metrics as the papers' tables and figures, one headline
# metrics.json (DVC metrics) and plot data (DVC plots); `snakemake --report` embeds them.


rule aggregate:
    input:
        metrics=rules.evaluate_all.input,
        models=expand(f"{MODELS}/sds_clip/{{run}}", run=SDS_RUNS)
        + expand(f"{MODELS}/clip_td/{{run}}", run=CLIP_TD_RUNS),
    output:
        tables=report(
            directory(f"{RESULTS}/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
        ),
        figures=report(
            directory(f"{RESULTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
        plots=directory(f"{RESULTS}/plots"),
        metrics=f"{RESULTS}/metrics.json",
    params:
        **step_params("aggregate"),
        # results/metrics (read) and results/ (written), next to the metrics.json output
        metrics_dir=lambda w, output: os.path.join(os.path.dirname(output.metrics), "metrics"),
        out=lambda w, output: os.path.dirname(output.metrics),
    threads: 1
    conda:
        ENV
    log:
        f"{LOGS}/aggregate.log",
    benchmark:
        f"{BENCH}/aggregate.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=1,
    shell:
        "{params.step} --params {params.params_file} --metrics {params.metrics_dir}"
        " --models {input.models} --out {params.out} > {log} 2>&1"


# Cheap and reading many small files: runs on the machine running Snakemake.
localrules:
    aggregate,
    aggregate_all,


rule aggregate_all:
    input:
        rules.aggregate.output,
