"""What machine a step or a benchmark runs on, and the numeric precision that follows from it.

Precision is decided from the device alone, never from the CPU's instruction set: ``auto`` is bf16
autocast on CUDA and fp32 on CPU, so the same params give the same numbers on CPUs with and
without native bf16 (AVX512-BF16 / AMX on some x86 machines, emulated and 5-100x slower on AVX2
ones). bf16 on a CPU is only used when a params file asks for it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")
# environment that holds torch's own kernels, MKL and oneDNN to AVX2 code paths, as on a CPU
# without AVX-512 (for benchmarks and tests that compare the two on one machine)
AVX2_ONLY_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# CPU flags that decide how fast fp32 and bf16 run (x86 names from /proc/cpuinfo; bf16: Arm)
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "bf16")


def device_for(params_device: str = "auto") -> torch.device:
    """The GPU of this process (torchrun's LOCAL_RANK when it started several), else the CPU."""
    if params_device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    return torch.device(params_device)


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of a trainer's ``precision`` on ``device`` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    device_type = torch.device(device).type
    if precision == "bf16" or (precision == "auto" and device_type == "cuda"):
        return torch.bfloat16
    return None


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_flags(info: dict[str, str] | None = None) -> set[str]:
    """The CPU's feature flags, from ``_cpuinfo()`` fields (read here when not given)."""
    info = _cpuinfo() if info is None else info
    return set((info.get("flags") or info.get("Features") or "").split())


def cpu_has_native_bf16() -> bool | None:
    """Whether the CPU has bf16 instructions (None where /proc/cpuinfo does not tell)."""
    flags = cpu_flags()
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def machine_info(device: torch.device | str = "cpu") -> dict:
    """The facts a timing depends on, recorded beside every benchmark figure."""
    info = _cpuinfo()
    flags = cpu_flags(info)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    record = {
        "cpu_model": info.get("model name") or info.get("Model") or platform.processor() or "unknown",
        # family/model numbers tell CPU generations apart where a hypervisor shortens the name
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "cpu_flags": {flag: flag in flags for flag in SPEED_FLAGS},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels ATen dispatches to
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
        record["cuda"] = torch.version.cuda
    return record
