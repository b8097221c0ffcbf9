# Paths, wildcard constraints and helpers shared by every rule file.

import json
import os
import re

from pipeline_steps.cluster import launcher, slurm_site
from pipeline_steps.code_deps import step_digest
from pipeline_steps.config import dump as dump_params
from pipeline_steps.data.registry import (PREPARED_DATASETS, PREPARED_FROM, RAW_SOURCES, TASKS,
                                          datasets_to_prepare)
from pipeline_steps.data.synthetic import SOURCE_KEYS
from pipeline_steps.grid import (CLIP_TD_RUN_FORMAT, LAMBDA_PATTERN, SDS_RUN_FORMAT, SETTING_PATTERN,
                                 clip_td_runs, evaluated_clip_runs, evaluated_datasets, parse_sds_run,
                                 sds_runs)
from pipeline_steps.io import atomic_write_text

RAW = config["paths"]["raw"]
PREPARED = config["paths"]["prepared"]
SPLITS = config["paths"]["splits"]
LOGS = config["paths"]["logs"]
BENCH = config["paths"]["benchmarks"]
# Prepared datasets of this configuration: every benchmark and task, the zero-shot sets the
# evaluation lists (the synthetic world's or paper mode's) and, in the synthetic world, the CLIP's
# pretraining corpus.
CLIP_CORPUS = config["pretrain"]["clip_corpus"] if config["mode"] == "synthetic" else []
DATASETS = datasets_to_prepare(config["evaluate"]["zeroshot"]["datasets"], CLIP_CORPUS)
# Software environment of every job, for --software-deployment-method conda (the default run
# uses the Python environment the package is installed in).
ENV = "../envs/pipeline.yaml"

# The merged, validated configuration (params.yaml + any --configfile/--config) that every step
# reads. Rewritten only when it changes; rules re-run on changes through their `params:` sections.
PARAMS_FILE = ".pipeline/params.yaml"
_effective = dump_params(config)
if not os.path.exists(PARAMS_FILE) or open(PARAMS_FILE).read() != _effective:
    atomic_write_text(PARAMS_FILE, _effective)


# Params of the rules that run a step (one step each), namely the command that starts the step, the
# params file it reads and the digest of the package code it runs (pipeline_steps/code_deps.py), so that a code change reruns
# exactly the jobs whose step reaches the edited module. Every job runs torch on one thread
# (`threads: 1`): results do not depend on a machine's core count, and two small jobs side by side
# finish sooner than one job on two threads (bench/README.md, end to end). Training jobs with several
# GPUs start one process per GPU (torchrun); the others are plain.
def step_params(step, gpus=0):
    return {"step": f"{launcher(gpus)} {step}", "params_file": PARAMS_FILE, "code": step_digest(step)}


# The SLURM account and partition of every submitted job, from the user's environment
# (SBATCH_ACCOUNT, SBATCH_PARTITION) or profiles/slurm/site.yaml; empty when neither sets them.
SLURM_SITE = slurm_site(os.environ)


# --- models and runs -------------------------------------------------------------------------------
MODELS = config["paths"]["models"]
RESULTS = config["paths"]["results"]
FEATURES = config["paths"]["features"]
WORK = f"{MODELS}/.work"  # checkpoints that survive a failed or preempted job (not an output)
# the CLIPs some run uses (models.clip may list more, e.g. clip-tiny under a paper preset)
CLIP_MODELS = [name for name in config["models"]["clip"]
               if name in config["sds_clip"]["backbones"] or name == config["clip_td"]["teacher"]["clip"]]
TEACHER = config["models"]["diffusion"]["name"]
TEACHER_FOLDER = f"{MODELS}/pretrained/{TEACHER}"
TEXT_CACHE = f"{FEATURES}/sd_text/{TEACHER}"
SDS = config["sds_clip"]
# run names and evaluated datasets: pipeline_steps/grid.py
SDS_RUN = SDS_RUN_FORMAT
SDS_RUNS = sds_runs(SDS)
# runs evaluated: each untouched base CLIP (base-<backbone>) and every SDS-CLIP run
EVAL_RUNS = evaluated_clip_runs(SDS)
EVAL_DATASETS = evaluated_datasets(config["evaluate"])


# --- CLIP-TD: task x setting x method x seed -------------------------------------------------------
CTD = config["clip_td"]
STUDENT = config["models"]["student"]["name"]
STUDENT_FOLDER = f"{MODELS}/pretrained/{STUDENT}"
CTD_TEACHER = CTD["teacher"]["clip"]
CLIP_TD_CACHE = f"{FEATURES}/clip_td/{CTD_TEACHER}"
# Jobs that run one process (features, evaluation) ask for at most one GPU.
SDS_JOB_GPUS = min(SDS["gpus"], 1)
CTD_JOB_GPUS = min(CTD["gpus"], 1)
CTD_RUN = CLIP_TD_RUN_FORMAT
CLIP_TD_RUNS = clip_td_runs(CTD, config["splits"])


def clip_td_run_config(task, method):
    """The clip_td params one run reads (Snakemake reruns it when they change): not the grid keys,
    only its own task's training overrides, and for a method without distillation only the
    teacher's word limit (it also cuts the student's text)."""
    grid = ("tasks", "settings", "lowshot_fractions", "seeds", "methods", "gpus", "task_train")
    run = {k: v for k, v in CTD.items() if k not in grid} | {"method": CTD["methods"][method]}
    run["task_train"] = CTD.get("task_train", {}).get(task, {})
    if float(CTD["methods"][method]["weight"]) == 0:
        del run["distill"], run["weighting"]
        run["teacher"] = {"max_words": CTD["teacher"]["max_words"]}
    return run


def clip_td_split_file(wildcards):
    """The split file of a run: a low-shot setting uses the subset drawn with the run's seed."""
    name = wildcards.setting
    if name.startswith("lowshot-"):
        name = f"{name}-seed{wildcards.seed}"
    return f"{SPLITS}/{wildcards.task}/{name}.json"


def clip_td_teacher_inputs(wildcards):
    """The cached features of the task (cached mode) or the teacher CLIP (online mode); nothing for
    a method that does not distil."""
    if float(CTD["methods"][wildcards.method]["weight"]) == 0:
        return {}
    if CTD["teacher"]["mode"] == "online":
        return {"teacher": clip_folder(CTD_TEACHER)}
    return {"teacher_cache": f"{CLIP_TD_CACHE}/{wildcards.task}"}


def teacher_args(wildcards, input):
    if "teacher_cache" in input.keys():
        return f"--teacher-cache {input.teacher_cache}"
    if "teacher" in input.keys():
        return f"--teacher {input.teacher}"
    return ""


def clip_folder(name):
    return f"{MODELS}/pretrained/{name}"


def model_of_run(wildcards):
    run = parse_sds_run(wildcards.run)
    if run.is_base:
        return clip_folder(run.backbone)
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
    lam=LAMBDA_PATTERN,
    seed=r"\d+",
    setting=SETTING_PATTERN,
    method=one_of(config["clip_td"]["methods"]),
