# Paths, wildcard constraints and helpers shared by every rule file.

import json
import os
import re

from pipeline_steps.config import dump as dump_params
from pipeline_steps.data.registry import PREPARED_DATASETS, PREPARED_FROM, RAW_SOURCES, TASKS
from pipeline_steps.data.synthetic import SOURCE_KEYS
from pipeline_steps.io import atomic_write_text

RAW = config["paths"]["raw"]
PREPARED = config["paths"]["prepared"]
SPLITS = config["paths"]["splits"]
LOGS = config["paths"]["logs"]
BENCH = config["paths"]["benchmarks"]
# Software environment of every job, for --software-deployment-method conda (the default run
# uses the Python environment the package is installed in).
ENV = "../envs/pipeline.yaml"

# The merged, validated configuration (params.yaml + any --configfile/--config) that every step
# reads. Rewritten only when it changes; rules re-run on changes through their `params:` sections.
PARAMS_FILE = ".pipeline/params.yaml"
_effective = dump_params(config)
if not os.path.exists(PARAMS_FILE) or open(PARAMS_FILE).read() != _effective:
    atomic_write_text(PARAMS_FILE, _effective)


# Passed to every step: how to call the package and which params file to read.
STEP_PARAMS = {"step": "python -m pipeline_steps", "params_file": PARAMS_FILE}


# --- models and runs -------------------------------------------------------------------------------
MODELS = config["paths"]["models"]
RESULTS = config["paths"]["results"]
FEATURES = config["paths"]["features"]
WORK = f"{MODELS}/.work"  # checkpoints that survive a failed or preempted job (not an output)
CLIP_MODELS = list(config["models"]["clip"])
TEACHER = config["models"]["diffusion"]["name"]
TEACHER_FOLDER = f"{MODELS}/pretrained/{TEACHER}"
TEXT_CACHE = f"{FEATURES}/sd_text/{TEACHER}"
SDS = config["sds_clip"]
SDS_RUNS = [
    f"{backbone}-lam{float(lam):g}-s{seed}"
    for backbone in SDS["backbones"]
    for lam in SDS["lambdas"]
    for seed in SDS["seeds"]
]
# runs evaluated: each untouched base CLIP (base-<backbone>) and every SDS-CLIP run
EVAL_RUNS = [f"base-{b}" for b in SDS["backbones"]] + SDS_RUNS
EVAL_DATASETS = ["winoground", "aro_vg_relation", "aro_vg_attribution", "aro_coco_order",
                 "aro_flickr_order", "sugarcrepe"] + config["evaluate"]["zeroshot"]["datasets"]


def clip_folder(name):
    return f"{MODELS}/pretrained/{name}"


def model_of_run(wildcards):
    if wildcards.run.startswith("base-"):
        return clip_folder(wildcards.run.removeprefix("base-"))
    return f"{MODELS}/sds_clip/{wildcards.run}"


def section(*path):
    """The config value at `path` as stable JSON: a rule's `params` entry that re-runs it on change."""
    value = config
    for key in path:
        value = value[key]
    return json.dumps(value, sort_keys=True)


def one_of(names):
    """A wildcard constraint matching exactly one of `names`."""
    return "|".join(re.escape(str(n)) for n in names)


wildcard_constraints:
    clip=one_of(config["models"]["clip"]),
    source="|".join(RAW_SOURCES),
    dataset="|".join(PREPARED_DATASETS),
    task="|".join(TASKS),
    run=one_of(EVAL_RUNS),
    lam=r"[0-9][0-9.e+-]*",
    seed=r"\d+",
