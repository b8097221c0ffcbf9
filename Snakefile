# SDS-CLIP and CLIP-TD pipeline. Thin on purpose: configuration, validation, rule files, targets.
# Every computation lives in the package `pipeline_steps`; see README.md and workflow/rules/.

from snakemake.utils import min_version, validate

import sys

from pipeline_steps.config import check_configfile_flags, validate as validate_params

min_version("9.0")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


check_configfile_flags(sys.argv)
# Our validator first: its errors name the key path (splits.lowshot.fractions[2]: ...).
validate_params(config, "configuration (params.yaml + --configfile/--config overrides)")
validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/pretrained.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/sds_clip.smk"
include: "workflow/rules/clip_td.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        rules.data_all.input,
        rules.splits_all.input,
        rules.pretrained_all.input,
        rules.features_all.input,
        rules.sds_clip_all.input,
        rules.clip_td_all.input,
        rules.evaluate_all.input,
        rules.aggregate_all.input,
