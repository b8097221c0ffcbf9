# Paths, wildcard constraints and helpers shared by every rule file.

import json
import os

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


def section(*path):
    """The config value at `path` as stable JSON: a rule's `params` entry that re-runs it on change."""
    value = config
    for key in path:
        value = value[key]
    return json.dumps(value, sort_keys=True)


wildcard_constraints:
    source="|".join(RAW_SOURCES),
    dataset="|".join(PREPARED_DATASETS),
    task="|".join(TASKS),
