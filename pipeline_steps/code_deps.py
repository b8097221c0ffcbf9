"""The package code each step runs, so that a code change reruns exactly the jobs it affects.

A step (``python -m pipeline_steps <step>``) runs ``cli.py``'s module-level imports and the imports
inside its own handler function (and the ``cli`` helpers it calls); every module reached imports
more. Their transitive closure, read statically from the source (``ast``), is the step's code:

- Snakemake rules carry ``step_digest(step)`` in their ``params:`` (``workflow/rules/common.smk``),
  so editing a module changes the params of exactly the jobs whose step reaches it, and Snakemake
  reruns those (rerun trigger ``params``);
- each ``dvc.yaml`` stage lists the closure of the steps its rules call as ``deps``, checked by
  ``tests/test_code_deps.py``.

Imports are followed wherever they appear in a module (a lazy import inside a function runs too),
except in ``cli.py``, where only the step's own handler and what every step runs (``main``, the
argument parser) count. Package ``__init__.py`` files on the way are included: they run on import.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

PACKAGE = "pipeline_steps"
ROOT = Path(__file__).resolve().parent
CLI = f"{PACKAGE}.cli"
# cli functions every step runs, whatever its handler
ALWAYS_RUN = ("main", "build_parser")
# Files other than Python source that a module reads at run time, relative to the package.
PACKAGE_DATA = {f"{PACKAGE}.models.clip": ("models/configs",)}


def module_file(module: str) -> Path | None:
    """The source file of a package module (``pipeline_steps.train.loop``), or None outside it."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(module: str) -> bool:
    path = module_file(module)
    return path is not None and path.name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the package modules an ``from X import a, b`` statement loads."""
    if node.level:
        anchor = module.split(".")
        if not _is_package(module):
            anchor = anchor[:-1]
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    found = [base] if module_file(base) else []
    # `from . import metrics` and `from .data import grammar` load submodules by name
    found += [f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")]
    return found


def imports_in(module: str, nodes: list[ast.AST]) -> set[str]:
    found: set[str] = set()
    for tree in nodes:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                found.update(_resolve(module, node))
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if module_file(alias.name))
    return found


@functools.lru_cache(maxsize=None)
def _parsed(module: str) -> ast.Module:
    return ast.parse(module_file(module).read_text(), filename=str(module_file(module)))


@functools.lru_cache(maxsize=None)
def direct_imports(module: str) -> frozenset[str]:
    """Package modules ``module`` imports anywhere in its source, with their parent packages."""
    found = imports_in(module, [_parsed(module)])
    return frozenset(_with_parents(found) - {module})


def _with_parents(modules: set[str]) -> set[str]:
    out = set(modules)
    for name in modules:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return out


def closure(modules: set[str] | frozenset[str]) -> set[str]:
    """Every package module that importing ``modules`` runs."""
    seen: set[str] = set()
    todo = list(_with_parents(set(modules)))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(name) - seen)
    return seen


def cli_functions() -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in _parsed(CLI).body if isinstance(n, ast.FunctionDef)}


def handler_name(step: str) -> str:
    """The handler of a step in ``cli.STEPS`` (``"train-clip-td": (_train_clip_td, ...)``)."""
    for node in _parsed(CLI).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "STEPS" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values):
                if key.value == step:
                    return value.elts[0].id
    raise KeyError(f"no step {step!r} in {CLI}.STEPS")


def step_names() -> list[str]:
    for node in _parsed(CLI).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "STEPS" for t in node.targets):
            return [key.value for key in node.value.keys]
    raise KeyError(f"no STEPS in {CLI}")


@functools.lru_cache(maxsize=None)
def step_modules(step: str) -> tuple[str, ...]:
    """The package modules ``python -m pipeline_steps <step>`` runs, sorted."""
    functions = cli_functions()
    top = [n for n in _parsed(CLI).body if not isinstance(n, ast.FunctionDef)]
    # the step's handler, what every step runs (argument parsing, main) and the cli helpers they
    # call (e.g. _threads)
    bodies, todo = {}, [handler_name(step), *ALWAYS_RUN]
    while todo:
        name = todo.pop()
        if name in bodies:
            continue
        bodies[name] = functions[name]
        todo += [n.func.id for n in ast.walk(functions[name])
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in functions]
    entry = imports_in(CLI, top + list(bodies.values())) | {CLI, f"{PACKAGE}.__main__"}
    # cli's own imports are followed only through the modules it names, not through cli again
    found = {CLI, f"{PACKAGE}.__main__"}
    for name in entry - {CLI, f"{PACKAGE}.__main__"}:
        found |= closure({name})
    return tuple(sorted(found | {PACKAGE}))


def module_files(module: str) -> list[Path]:
    """A module's source file and the data files it reads."""
    files = [module_file(module)]
    for rel in PACKAGE_DATA.get(module, ()):
        path = ROOT / rel
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def step_files(step: str) -> list[str]:
    """The step's files, relative to the repository root (``pipeline_steps/train/loop.py``)."""
    return sorted(str(f.relative_to(ROOT.parent)) for m in step_modules(step) for f in module_files(m))


@functools.lru_cache(maxsize=None)
def step_digest(step: str) -> str:
    """sha256 over the step's source files (names and contents)."""
    h = hashlib.sha256()
    for rel in step_files(step):
        h.update(rel.encode() + b"\0" + (ROOT.parent / rel).read_bytes() + b"\0")
    return h.hexdigest()


# --- the workflow's side: rule files and DVC stages --------------------------------------------------
WORKFLOW_FILES = ("Snakefile", "workflow/rules/common.smk")
_SMK_IMPORT = re.compile(rf"^(?:from|import) ({PACKAGE}(?:\.\w+)*)", re.MULTILINE)
_SMK_STEP = re.compile(r'step_params\("([a-z-]+)"')


def rule_file_steps(text: str) -> set[str]:
    """The steps a rule file's rules run (``**step_params("train-clip-td")``)."""
    return set(_SMK_STEP.findall(text))


def stage_files(rule_files: list[Path], repo: Path) -> list[str]:
    """The package files a DVC stage that runs these rule files depends on: the code of every step
    its rules run, and the modules Snakemake itself imports to build the DAG (Snakefile and
    common.smk), relative to ``repo``."""
    texts = [(repo / f).read_text() for f in (*WORKFLOW_FILES, *rule_files)]
    modules = closure({m for t in texts for m in _SMK_IMPORT.findall(t)})
    files = {str(f.relative_to(ROOT.parent)) for m in modules for f in module_files(m)}
    for step in {s for t in texts for s in rule_file_steps(t)}:
        files.update(step_files(step))
    return sorted(files)
