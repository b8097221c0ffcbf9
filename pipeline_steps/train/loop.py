"""The training loop every trainer shares: AMP, accumulation, checkpoints, resume, signals.

Determinism by construction (``schedule.py``): the examples of step ``s`` and every random draw
inside it come from generators seeded by ``(seed, s)``, and the learning rate is a function of
``s``.  A resumed run therefore needs only the step, the weights and the optimizer state to
continue exactly where an uninterrupted run would be. Several processes (torchrun) split each step
(``distributed.py``).

Checkpoints (``<out>/checkpoints/step-<n>/``): ``trainable.safetensors`` (every parameter that
trains, by name) and ``optimizer.pt`` (loaded with ``weights_only=True``), written under a temporary
name and renamed.  ``<out>/run.json`` records what the checkpoints belong to (the loop settings that
change results, the parameter shapes, the data size and the caller's identity, e.g. its params
section): a run whose params changed since starts afresh instead of resuming someone else's state.
SIGTERM/SIGUSR1 (sent by SLURM before preemption) save a checkpoint after the current step and exit
with status 75 so the job can be retried and resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import InputError, TrainingDiverged
from ..hardware import autocast_dtype, cpu_has_native_bf16
from ..io import atomic_dir, atomic_write_json
from .distributed import Distributed
from .outputs import training_curves
from .schedule import batch_indices, lr_at, step_generator

log = logging.getLogger(__name__)
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: "try again"


@dataclass
class LoopConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_accum: int = 1
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; bf16 / fp32 on any device
    # (hardware.autocast_dtype: never decided by the CPU's instruction set, so results do not
    # depend on which CPU ran them)
    compile: bool = False

    @classmethod
    def from_params(cls, section: dict, seed: int, n_items: int | None = None) -> "LoopConfig":
        """The loop of a params section.  With ``epochs``, the run trains
        ``max(steps, ceil(epochs * n_items / (batch_size * grad_accum)))`` steps: training length
        follows the data, and ``steps`` is the least a small dataset gets."""
        keys = cls.__dataclass_fields__
        cfg = cls(seed=seed, **{k: v for k, v in section.items() if k in keys and k != "seed"})
        if section.get("epochs") is not None:
            if n_items is None:
                raise ValueError("epochs needs the number of training items")
            per_step = cfg.batch_size * cfg.grad_accum
            cfg.steps = max(cfg.steps, math.ceil(float(section["epochs"]) * n_items / per_step))
        return cfg


class Trainer:
    """Runs ``loss_fn(step, indices, generator) -> (loss, {name: float})`` for ``cfg.steps`` steps."""

    def __init__(self, out_dir: str | Path, cfg: LoopConfig, named_params: dict[str, torch.nn.Parameter],
                 n_items: int, loss_fn: Callable, device: torch.device, live_dir: str | Path | None = None,
                 identity: dict | None = None, on_fresh_start: Callable[[], None] | None = None):
        self.out_dir = Path(out_dir)
        # called before the first step of a run that starts from scratch, not of a resumed one (whose
        # checkpoint holds the result): e.g. an initialisation fitted to data
        self.on_fresh_start = on_fresh_start
        self.identity = identity or {}
        self.cfg = cfg
        self.named_params = named_params
        self.params = list(named_params.values())
        self.n_items = n_items
        self.loss_fn = loss_fn
        self.device = device
        self.dist = Distributed(device)
        # fused on CPU too: torch's default CPU AdamW loops over the tensors in Python (12 ms a step
        # for the diffusion teacher's 244 tensors, 3.7 ms fused; bench/optimizer_step.py)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.live_dir = Path(live_dir) if live_dir else self.out_dir / "dvclive"
        self._stop_signal: int | None = None
        self.autocast_dtype = autocast_dtype(cfg.precision, device)
        if self.autocast_dtype is not None and device.type == "cpu" and cpu_has_native_bf16() is False:
            log.warning("precision: bf16 on a CPU without bf16 instructions (avx512_bf16, amx_bf16, Arm bf16): "
                        "emulated bf16 is slower than fp32 here; set precision: fp32")

    # --- checkpoints -----------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.out_dir / "checkpoints"

    def checkpoints(self) -> list[Path]:
        if not self.checkpoint_root.is_dir():
            return []
        found = [p for p in self.checkpoint_root.glob("step-*") if (p / "state.json").is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self, step: int) -> None:
        if not self.dist.main:
            return
        with atomic_dir(self.checkpoint_root / f"step-{step}") as tmp:
            save_file({k: p.detach().cpu().contiguous() for k, p in self.named_params.items()},
                      tmp / "trainable.safetensors")
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            atomic_write_json(tmp / "state.json", {"step": step})
        for old in self.checkpoints()[:-self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def run_identity(self) -> dict:
        """What a checkpoint must match to be resumed (how often we log or save does not count)."""
        loop = {k: v for k, v in dataclasses.asdict(self.cfg).items()
                if k not in ("log_every", "checkpoint_every", "keep_checkpoints")}
        return json.loads(json.dumps({
            "loop": loop, "n_items": self.n_items, "identity": self.identity,
            "parameters": {k: list(p.shape) for k, p in self.named_params.items()}}, default=str))

    def discard_stale_state(self) -> None:
        """Remove checkpoints and curves written for another configuration, then record ours."""
        record = self.out_dir / "run.json"
        current = self.run_identity()
        previous = json.loads(record.read_text()) if record.is_file() else None
        if previous != current and (self.checkpoint_root.exists() or self.live_dir.exists()):
            changed = sorted(k for k in current if previous is None or previous.get(k) != current[k])
            log.warning("%s holds checkpoints of another configuration (differs in: %s); starting afresh",
                        self.out_dir, ", ".join(changed))
            shutil.rmtree(self.checkpoint_root, ignore_errors=True)
            shutil.rmtree(self.live_dir, ignore_errors=True)
        if previous != current:
            atomic_write_json(record, current)

    def load_latest(self) -> int:
        """Restore the newest readable checkpoint; returns the step to continue from."""
        for ckpt in reversed(self.checkpoints()):
            try:
                tensors = load_file(ckpt / "trainable.safetensors")
                optimizer = torch.load(ckpt / "optimizer.pt", weights_only=True, map_location=self.device)
            except Exception as e:  # noqa: BLE001 - a truncated file raises many types
                log.warning("checkpoint %s is unreadable (%s); trying an older one", ckpt, e)
                continue
            missing = set(self.named_params) - set(tensors)
            if missing:
                raise InputError(f"checkpoint {ckpt} lacks parameters: {sorted(missing)[:5]}")
            wrong = [k for k, p in self.named_params.items() if tensors[k].shape != p.shape]
            if wrong:
                raise InputError(f"checkpoint {ckpt} has other shapes for {wrong[:5]}: delete "
                                 f"{self.checkpoint_root} to start afresh")
            with torch.no_grad():
                for k, p in self.named_params.items():
                    p.copy_(tensors[k].to(p.device, p.dtype))
            self.optimizer.load_state_dict(optimizer)
            step = int(json.loads((ckpt / "state.json").read_text())["step"])
            log.info("resumed from %s", ckpt)
            return step
        return 0

    # --- the loop ----------------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self._stop_signal = signum

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def run(self) -> dict[str, float]:
        if self.dist.main:
            self.discard_stale_state()
        self.dist.barrier()
        start = self.load_latest()
        if start == 0 and self.on_fresh_start is not None:
            self.on_fresh_start()
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._on_signal)
        live = training_curves(self.live_dir, resume=start > 0) if self.dist.main else None
        last: dict[str, float] = {}
        micro = max(1, self.cfg.batch_size // self.cfg.grad_accum)
        for step in range(start, self.cfg.steps):
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(step, self.cfg)
            indices = self.dist.shard(batch_indices(step, self.n_items, self.cfg.batch_size, self.cfg.seed))
            generator = step_generator(self.cfg.seed, step, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            chunks = [indices[i:i + micro] for i in range(0, len(indices), micro)]
            for chunk in chunks:
                with self.autocast():
                    loss, metrics = self.loss_fn(step, chunk, generator)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"non-finite loss {loss.item()} at step {step} ({metrics}); the last good "
                        f"checkpoint is kept in {self.checkpoint_root}")
                (loss / len(chunks)).backward()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v / len(chunks)
            self.dist.average_gradients(self.params)
            self.optimizer.step()
            last = {**sums, "lr": lr_at(step, self.cfg)}
            done = step + 1
            if live is not None and (done % self.cfg.log_every == 0 or done == self.cfg.steps):
                live.step = done
                for k, v in last.items():
                    live.log_metric(f"train/{k}", v)
                live.next_step()
            stop = self.dist.any(self._stop_signal is not None, self.device)
            if stop or done % self.cfg.checkpoint_every == 0:
                self.save_checkpoint(done)
            if stop:
                log.warning("signal %s: checkpoint saved at step %d, exiting for a retry",
                            self._stop_signal or "on another rank", done)
                self.dist.barrier()
                raise SystemExit(PREEMPTED_EXIT)
        if live is not None:
            live.end()
        self.dist.barrier()
        return last
