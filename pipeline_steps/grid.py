"""The run grid: every run's name, how a name is read back, and what each run is evaluated on.

One definition for the rule files (``workflow/rules/common.smk``), evaluation and aggregation:

- SDS-CLIP: ``<backbone>-lam<lambda>-s<seed>`` (``clip-tiny-lam0.5-s1``); ``lam0`` is the COCO
  fine-tune control. ``base-<backbone>`` is the untouched CLIP, evaluated beside them.
- CLIP-TD: ``<task>-<setting>-<method>-s<seed>`` (``vqa-lowshot-10-targeted-s0``); settings are
  ``full``, ``lowshot-<percent>`` and ``shift-<kind>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The compositional benchmarks every CLIP is evaluated on; zero-shot datasets come from params.
COMPOSITIONAL_DATASETS = ("winoground", "aro_vg_relation", "aro_vg_attribution", "aro_coco_order",
                          "aro_flickr_order", "sugarcrepe")
# SDS-CLIP's lambda is selected on this dataset's val captions (never on a benchmark)
SELECTION_DATASET = "coco"
BASE_PREFIX = "base-"
# wildcard patterns of the name parts (Snakemake wildcard constraints use the same)
LAMBDA_PATTERN = r"[0-9][0-9.e+-]*"
SETTING_PATTERN = r"full|lowshot-[0-9.]+|shift-[a-z_]+"
SDS_RUN_FORMAT = "{clip}-lam{lam}-s{seed}"
CLIP_TD_RUN_FORMAT = "{task}-{setting}-{method}-s{seed}"

_SDS_RUN = re.compile(rf"^(?P<backbone>.+)-lam(?P<lam>{LAMBDA_PATTERN})-s(?P<seed>\d+)$")
_CLIP_TD_RUN = re.compile(rf"^(?P<task>[a-z0-9_]+)-(?P<setting>{SETTING_PATTERN})-(?P<method>.+)-s(?P<seed>\d+)$")


def percent_name(fraction: float) -> str:
    """0.01 -> '1', 0.25 -> '25', 0.001 -> '0.1'."""
    return f"{fraction * 100:.6g}"


# --- SDS-CLIP ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SdsRun:
    backbone: str
    lam: float | None  # None: the base CLIP
    seed: int

    @property
    def is_base(self) -> bool:
        return self.lam is None


def sds_run_name(backbone: str, lam: float, seed: int) -> str:
    return SDS_RUN_FORMAT.format(clip=backbone, lam=f"{float(lam):g}", seed=seed)


def base_run_name(backbone: str) -> str:
    return f"{BASE_PREFIX}{backbone}"


def parse_sds_run(name: str) -> SdsRun | None:
    """The run a name of the SDS-CLIP grid denotes; None for other names."""
    if name.startswith(BASE_PREFIX):
        return SdsRun(name.removeprefix(BASE_PREFIX), None, 0)
    m = _SDS_RUN.match(name)
    return SdsRun(m["backbone"], float(m["lam"]), int(m["seed"])) if m else None


def sds_runs(sds: dict) -> list[str]:
    """Every SDS-CLIP training run of the ``sds_clip`` params section."""
    return [sds_run_name(b, lam, seed) for b in sds["backbones"] for lam in sds["lambdas"] for seed in sds["seeds"]]


def evaluated_clip_runs(sds: dict) -> list[str]:
    """The CLIPs evaluated: each untouched base CLIP and every SDS-CLIP run."""
    return [base_run_name(b) for b in sds["backbones"]] + sds_runs(sds)


def evaluated_datasets(evaluate: dict) -> list[str]:
    """The prepared datasets one CLIP's evaluation reads (``evaluate`` params section); ``coco`` last,
    for the model-selection score on its held-out captions."""
    return [*COMPOSITIONAL_DATASETS, *evaluate["zeroshot"]["datasets"], SELECTION_DATASET]


# --- CLIP-TD ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipTdRun:
    task: str
    setting: str
    method: str
    seed: int


def clip_td_run_name(task: str, setting: str, method: str, seed: int) -> str:
    return CLIP_TD_RUN_FORMAT.format(task=task, setting=setting, method=method, seed=seed)


def parse_clip_td_run(name: str) -> ClipTdRun | None:
    m = _CLIP_TD_RUN.match(name)
    return ClipTdRun(m["task"], m["setting"], m["method"], int(m["seed"])) if m else None


def clip_td_settings(task: str, clip_td: dict, splits: dict) -> list[str]:
    """full, lowshot-<percent> for each CLIP-TD fraction, shift-<kind> for the task's shift kinds."""
    settings = ["full"] if "full" in clip_td["settings"] else []
    if "lowshot" in clip_td["settings"] and task in splits["lowshot"]["datasets"]:
        settings += [f"lowshot-{percent_name(f)}" for f in clip_td["lowshot_fractions"]]
    if "shift" in clip_td["settings"]:
        settings += [f"shift-{kind}" for kind in splits["shift"].get(task, [])]
    return settings


def clip_td_runs(clip_td: dict, splits: dict) -> list[str]:
    """Every CLIP-TD run: task x setting x method x seed."""
    return [clip_td_run_name(task, setting, method, seed)
            for task in clip_td["tasks"]
            for setting in clip_td_settings(task, clip_td, splits)
            for method in clip_td["methods"]
            for seed in clip_td["seeds"]]
