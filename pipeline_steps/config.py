"""Loading and validating params.yaml against ``workflow/schemas/params.schema.yaml``.

Snakemake validates the same file with the same schema at start-up; the Python steps validate
again, so a step run by hand gets the same errors.  Every error names the key path, e.g.
``splits.lowshot.fractions[2]: 1.5 is greater than the maximum of 1``.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ParamsError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "params.schema.yaml"


@lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def key_path(parts) -> str:
    """['splits', 'lowshot', 'fractions', 2] -> 'splits.lowshot.fractions[2]'."""
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(top level)"


def validation_errors(params: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{key_path(e.absolute_path)}: {e.message}" for e in errors]


def consistency_errors(params: dict) -> list[str]:
    """Rules between keys that a schema cannot state; each error names the key it is about."""
    errors = []
    ctd, lowshot = params["clip_td"], params["splits"]["lowshot"]
    if ctd["teacher"]["clip"] not in params["models"]["clip"]:
        errors.append(f"clip_td.teacher.clip: {ctd['teacher']['clip']!r} is not a key of models.clip")
    if "lowshot" in ctd["settings"]:
        for i, f in enumerate(ctd["lowshot_fractions"]):
            if not any(abs(f - g) < 1e-12 for g in lowshot["fractions"]):
                errors.append(f"clip_td.lowshot_fractions[{i}]: {f} is not in splits.lowshot.fractions "
                              f"{lowshot['fractions']}")
        for i, seed in enumerate(ctd["seeds"]):
            if seed not in lowshot["seeds"]:
                errors.append(f"clip_td.seeds[{i}]: {seed} is not in splits.lowshot.seeds {lowshot['seeds']} "
                              f"(low-shot runs train on the split of their seed)")
    return errors


def validate(params: Any, source: str = "params") -> dict:
    errors = validation_errors(params)
    if not errors:
        errors = consistency_errors(params)
    if errors:
        raise ParamsError(f"invalid {source}:\n  " + "\n  ".join(errors))
    return params


def check_configfile_flags(argv: list[str]) -> None:
    """Refuse several ``--configfile`` flags: Snakemake keeps only the last one's files (its option
    takes a list, and a second flag replaces the first), so ``--configfile presets/paper.yaml
    --configfile site.yaml`` would run without the preset, silently. One flag takes several files."""
    flags = [a for a in argv if a in ("--configfile", "--configfiles") or a.startswith("--configfile=")]
    if len(flags) > 1:
        raise ParamsError(f"{len(flags)} --configfile flags: Snakemake would read only the last one's files. "
                          f"List the files after one flag, merged left to right: "
                          f"--configfile presets/paper.yaml site.yaml")


def deep_merge(base: dict, override: dict) -> dict:
    """Override nested keys the way Snakemake merges --configfile files: dicts merge, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load(*paths: str | Path) -> dict:
    """Read one or more YAML files (later ones override earlier ones) and validate the result."""
    if not paths:
        raise ParamsError("no params file given")
    params: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ParamsError(f"params file {path} not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ParamsError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ParamsError(f"{path}: expected a mapping of keys at the top level")
        params = deep_merge(params, data)
    return validate(params, " + ".join(str(p) for p in paths))


def dump(params: dict) -> str:
    return yaml.safe_dump(params, sort_keys=True)
