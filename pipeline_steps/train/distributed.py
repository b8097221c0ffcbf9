"""Data-parallel training under torchrun: each process takes its share of a step's examples and
gradients are averaged by all-reduce (one process: every method is a no-op)."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


class Distributed:
    """torchrun's environment (WORLD_SIZE, RANK): gradients are averaged by all-reduce."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: np.ndarray) -> np.ndarray:
        return indices[self.rank::self.world]

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on one (all ranks stop at the same step)."""
        if self.world == 1:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())
