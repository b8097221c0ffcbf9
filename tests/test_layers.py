"""The package's layers only point down: a module imports modules of its own layer or of lower ones.

    core      errors, io, config, seeding, hardware (device, precision), cluster, code_deps, grid,
              metrics (pure metric functions)
    data      data/ (formats, synthetic world, downloads, shards), splits
    models    models/ (CLIP, diffusion teacher, student; their losses)
    tasks     tasks/ (CLIP-TD task examples and answers), features (SD text cache), clip_teacher
    steps     train/, evaluate/
    top       aggregate, cli, __main__, dvc_stage (the command of each dvc.yaml stage)

Within the steps layer, training and evaluation do not import each other: what both need (task
examples, answers, model loading) sits below them. Imports inside functions count: they run when
the function does.
"""

from __future__ import annotations

import pytest

from pipeline_steps import code_deps

LAYERS = {
    "core": ("errors", "io", "config", "seeding", "hardware", "cluster", "code_deps", "grid", "metrics"),
    "data": ("data", "splits"),
    "models": ("models",),
    "tasks": ("tasks", "features", "clip_teacher"),
    "steps": ("train", "evaluate"),
    "top": ("aggregate", "cli", "__main__", "dvc_stage"),
}
ORDER = list(LAYERS)
# packages of one layer that must not import each other
INDEPENDENT = ("train", "evaluate")


def all_modules() -> list[str]:
    names = []
    for path in sorted(code_deps.ROOT.rglob("*.py")):
        parts = list(path.relative_to(code_deps.ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def layer_of(module: str) -> int | None:
    """Index of the module's layer; None for the package itself."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    for i, members in enumerate(LAYERS.values()):
        if parts[1] in members:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: place it")


@pytest.mark.parametrize("module", all_modules())
def test_module_imports_only_its_own_layer_or_lower_ones(module):
    own = layer_of(module)
    if own is None:
        return
    upward = sorted(m for m in code_deps.direct_imports(module)
                    if layer_of(m) is not None and layer_of(m) > own)
    assert not upward, (f"{module} ({ORDER[own]}) imports {', '.join(upward)} "
                        f"({', '.join(sorted({ORDER[layer_of(m)] for m in upward}))})")


@pytest.mark.parametrize("module", [m for m in all_modules() if m.split(".")[1:2] in (["train"], ["evaluate"])])
def test_training_and_evaluation_do_not_import_each_other(module):
    own = module.split(".")[1]
    other = [m for m in code_deps.direct_imports(module) if m.split(".")[1:2] == [p for p in INDEPENDENT if p != own]]
    assert not other, f"{module} imports {', '.join(sorted(other))}"


def test_the_perturbation_lexicon_covers_the_synthetic_worlds_words():
    """ARO's fallback tagger has its own word lists (paper mode must not depend on the generator);
    they must still tag every colour, size and shape word the synthetic captions use."""
    from pipeline_steps.data.scenes import COLORS, PLURAL, SHAPES, SIZES
    from pipeline_steps.evaluate.perturbations import LEXICON_ADJECTIVES, LEXICON_NOUNS

    assert set(SHAPES) | set(PLURAL.values()) <= LEXICON_NOUNS
    assert set(COLORS) | set(SIZES) <= LEXICON_ADJECTIVES
