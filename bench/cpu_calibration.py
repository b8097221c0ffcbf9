"""How fast this CPU runs the kinds of work the pipeline's jobs do, to compare machines.

The pipeline's machines are not all one kind of CPU: some have AVX-512 with native bf16, others
AVX2 only. Timings of whole runs taken on one kind do not transfer to the other, so this bench
times a few small kernels that stand for the jobs, with the jobs' thread setting (one torch thread
per job), and the start-up every job pays (importing torch, open_clip, diffusers and transformers'
ViLT in a fresh interpreter):

- ``matmul``: fp32 (256 x 512) @ (512 x 512), the tiny CLIP's and the student's linears;
- ``conv``: fp32 3x3 convolution forward + backward, batch 32, 32 -> 32 channels at 16 x 16, the
  diffusion teacher's UNet;
- ``transformer``: forward + backward of one 64-wide encoder layer on 256 sequences of 84 tokens,
  the student's VCR step;
- ``matmul_bf16``: the matmul in bf16 (native on AVX512-BF16 / AMX, emulated elsewhere);
- ``startup_s``: the imports of a CLIP-TD job, median of 3 fresh interpreters.

``--with-avx2-kernels`` runs the kernels a second time in a child process restricted to AVX2 code
paths (``ATEN_CPU_CAPABILITY=avx2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``, ``ONEDNN_MAX_CPU_ISA=AVX2``):
on an AVX-512 machine that separates what the instruction set gives from what the rest of the
core (clock, caches, issue width) gives. Ratios between two machines are the figures to use: run
the bench on each, and divide.

    python bench/cpu_calibration.py --with-avx2-kernels --out bench/results/cpu_calibration-<machine>.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from pipeline_steps.hardware import AVX2_ONLY_ENV, machine_info

STARTUP = "import torch, open_clip, diffusers, transformers.models.vilt.modeling_vilt"


def timed(fn, repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kernels(repeats: int) -> dict:
    torch.manual_seed(0)
    results = {}

    a, b = torch.randn(256, 512), torch.randn(512, 512)
    s = timed(lambda: a @ b, repeats * 10)
    results["matmul"] = {"median_s": s, "gflops": 2 * 256 * 512 * 512 / s / 1e9}

    a16, b16 = a.bfloat16(), b.bfloat16()
    s = timed(lambda: a16 @ b16, repeats * 10)
    results["matmul_bf16"] = {"median_s": s, "gflops": 2 * 256 * 512 * 512 / s / 1e9}

    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(32, 32, 16, 16, requires_grad=True)

    def conv_step():
        conv.zero_grad(set_to_none=True)
        conv(x).sum().backward()

    s = timed(conv_step, repeats)
    flops = 3 * 2 * 32 * 32 * 32 * 9 * 16 * 16  # forward + two backward products
    results["conv"] = {"median_s": s, "gflops": flops / s / 1e9}

    layer = torch.nn.TransformerEncoderLayer(64, 2, 128, dropout=0.0, batch_first=True)
    tokens = torch.randn(256, 84, 64)

    def transformer_step():
        layer.zero_grad(set_to_none=True)
        layer(tokens).sum().backward()

    results["transformer"] = {"median_s": timed(transformer_step, repeats)}
    return results


def startup_seconds(runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the workflow's jobs use 1)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--with-avx2-kernels", action="store_true",
                        help="also run the kernels restricted to AVX2 code paths, in a child process")
    parser.add_argument("--kernels-only", action="store_true", help=argparse.SUPPRESS)  # the child's mode
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.kernels_only:
        print(json.dumps({"cpu_capability": torch.backends.cpu.get_cpu_capability(), **kernels(args.repeats)}))
        return
    report = {"bench": "cpu_calibration", "machine": machine_info(), "threads": args.threads,
              "kernels": kernels(args.repeats), "startup_s": startup_seconds(), "startup_imports": STARTUP}
    if args.with_avx2_kernels:
        child = subprocess.run([sys.executable, __file__, "--kernels-only", "--threads", str(args.threads),
                                "--repeats", str(args.repeats)], env={**os.environ, **AVX2_ONLY_ENV},
                               capture_output=True, text=True, check=True)
        restricted = json.loads(child.stdout)
        report["avx2_kernels"] = {"env": AVX2_ONLY_ENV, **restricted}
        report["avx2_kernels_slowdown"] = {
            name: restricted[name]["median_s"] / report["kernels"][name]["median_s"] for name in report["kernels"]}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
