"""Frozen-teacher caches, computed once and read by training.

SD text-encoder states for every training caption: ``states.npy`` (N, L, D) float16, memory-mapped
by readers, with ``ids.json`` giving the caption record id of each row.  The UNet's cross-attention
context never changes during SDS-CLIP training, so it is not recomputed at every step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .data.shards import PreparedDataset
from .io import CacheRows, atomic_dir, dumps_json
from .models.diffusion import load_teacher
from .hardware import device_for


def cache_text_states(teacher_dir: str | Path, prepared_coco: str | Path, out: str | Path,
                      split: str = "train", batch_size: int = 256) -> dict:
    device = device_for()
    teacher = load_teacher(teacher_dir, str(device))
    with PreparedDataset(prepared_coco) as data:
        records = [r for r in data.records(split)]
    ids = [r["id"] for r in records]
    with atomic_dir(out) as tmp:
        states = None
        for start in range(0, len(records), batch_size):
            chunk = [r["caption"] for r in records[start:start + batch_size]]
            with torch.no_grad():
                h = teacher.encode_text(chunk).to(torch.float16).cpu().numpy()
            if states is None:
                states = np.lib.format.open_memmap(tmp / "states.npy", mode="w+", dtype=np.float16,
                                                   shape=(len(records), *h.shape[1:]))
            states[start:start + len(chunk)] = h
        states.flush()
        (tmp / "ids.json").write_text(json.dumps(ids))
        summary = {"captions": len(ids), "shape": list(states.shape), "dtype": "float16",
                   "teacher": str(teacher_dir), "split": split}
        (tmp / "summary.json").write_text(dumps_json(summary))
    return summary


class TextStateCache:
    """Read the cached states of caption record ids (memory-mapped)."""

    def __init__(self, folder: str | Path):
        self.cache = CacheRows(folder, ["states"], "text-state cache")

    def get(self, ids: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.cache.arrays["states"][self.cache.rows(ids)]))
