"""What step ``s`` of a run trains on, and at which rate: pure functions of the seed and ``s``.

The examples of step ``s`` and every random draw inside it come from generators seeded by
``(seed, s)``, and the learning rate is a function of ``s``: a resumed run needs only the step,
the weights and the optimizer state to continue exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..seeding import rng_for

if TYPE_CHECKING:
    from .loop import LoopConfig


def lr_at(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(step: int, n_items: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices of step ``step``'s examples: epochs are seeded permutations, the last partial batch
    of an epoch is dropped."""
    per_epoch = max(1, n_items // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = rng_for(seed, "epoch", epoch).permutation(n_items)
    if n_items < batch_size:
        return order
    return order[position * batch_size:(position + 1) * batch_size]


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(rng_for(seed, "step", step).integers(2**62)))
    return g
