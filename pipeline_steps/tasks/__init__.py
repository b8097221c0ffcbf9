"""The CLIP-TD vision-language tasks, one module each, behind one interface (:class:`base.Task`).

Adding a task: a module with a :class:`base.Task` subclass, and its entry in ``TASKS`` below (the
prepared dataset of the same name comes from ``data.registry``).
"""

from __future__ import annotations

from .base import Example, Task
from .snli_ve import SnliVe
from .vcr import Vcr
from .vqa import VQA

TASKS: dict[str, Task] = {t.name: t for t in (VQA(), SnliVe(), Vcr())}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown CLIP-TD task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Example", "Task", "get_task"]
