"""The CLIP-TD student model: the VL student, its task head (ViLT's classifier shape) and the
projections to the teacher's width used by distillation in training only."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from .student import Student, load_student


class ClipTdModel(torch.nn.Module):
    """The student, its task head (ViLT's classifier shape) and the training-only projections."""

    def __init__(self, student: Student, n_outputs: int, teacher_dim: int):
        super().__init__()
        self.student = student
        h = student.hidden_size
        self.head = torch.nn.Sequential(torch.nn.Linear(h, 2 * h), torch.nn.LayerNorm(2 * h),
                                        torch.nn.GELU(), torch.nn.Linear(2 * h, n_outputs))
        self.project_image = torch.nn.Linear(h, teacher_dim)
        self.project_text = torch.nn.Linear(h, teacher_dim)


def load_clip_td(folder: str | Path, device: torch.device) -> tuple[ClipTdModel, dict]:
    folder = Path(folder)
    meta = json.loads((folder / "task.json").read_text())
    student = load_student(folder / "student", device)
    model = ClipTdModel(student, len(meta["outputs"]), 1)
    model.head.load_state_dict(load_file(folder / "head.safetensors"))
    return model.to(device).eval(), meta
