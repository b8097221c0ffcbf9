"""Cluster settings of the workflow: where SLURM jobs go, and how a multi-GPU job starts.

The SLURM account and partition belong to the user's site, not to the project, so the profile
does not name them. They come from SLURM's own sbatch variables (``SBATCH_ACCOUNT``,
``SBATCH_PARTITION``) when set, else from the site file ``profiles/slurm/site.yaml``
(``account:``, ``partition:``; not versioned, see ``site.example.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from .errors import SiteError

SITE_FILE = "profiles/slurm/site.yaml"
SITE_KEYS = {"account": ("SBATCH_ACCOUNT", "slurm_account"),
             "partition": ("SBATCH_PARTITION", "slurm_partition")}


def slurm_site(environ: Mapping[str, str], site_file: str | Path = SITE_FILE) -> dict[str, str]:
    """The ``slurm_account``/``slurm_partition`` resources every cluster job gets (only those set)."""
    path = Path(site_file)
    site: dict = {}
    if path.is_file():
        site = yaml.safe_load(path.read_text()) or {}
        if not isinstance(site, dict):
            raise SiteError(f"{path}: expected a mapping with keys {sorted(SITE_KEYS)}")
        for key, value in site.items():
            if key not in SITE_KEYS:
                raise SiteError(f"{path}: unknown key {key!r} (known: {', '.join(sorted(SITE_KEYS))})")
            if not isinstance(value, str) or not value.strip():
                raise SiteError(f"{path}: {key} must be a non-empty string, got {value!r}")
    resources = {}
    for key, (variable, resource) in SITE_KEYS.items():
        value = environ.get(variable, "").strip() or site.get(key, "").strip()
        if value:
            resources[resource] = value
    return resources


def launcher(gpus: int) -> str:
    """How a training job starts the package: one process per GPU through torchrun when it has
    several (gradients are all-reduced by the training loop), else plain python."""
    if gpus > 1:
        return f"torchrun --standalone --nnodes 1 --nproc-per-node {gpus} -m pipeline_steps"
    return "python -m pipeline_steps"
