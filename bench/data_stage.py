"""Data stage costs, side by side in one run: prepare throughput, DVC on sharded vs loose images,
and reading images back from shards vs loose files.

1. ``prepare``: the project's own ``prepare("coco", ...)`` on a synthetic COCO of ``--prepare-images``
   images per side in ``--prepare-sizes`` (decode check, texture score, tar shards, parquet index);
   images/s on one core.
2. DVC: the same ``--images`` small PNGs (32x32 noise, ~3 KB) once as loose files and once packed by
   the project's ``ShardWriter`` (``--shard-mb`` per shard) in one git + DVC repository; times
   ``dvc add`` and ``dvc status`` (nothing changed, median of 3) for each.
3. Reading: every image decoded from the loose files vs through ``PreparedDataset`` from the shards,
   with the page cache warm and (as root) emptied before each pass ("cold": reads from disk).

    python bench/data_stage.py --images 100000 --out bench/results/data_stage-cpu2.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.shards import RECORDS, PreparedDataset, ShardWriter
from pipeline_steps.data.synthetic import synthesize
from pipeline_steps.hardware import machine_info


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sh(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def bench_prepare(n: int, size: int, tmp: Path) -> dict:
    cfg = {"seed": 0, "image_size": size, "textured_light": [1.0, 1.0, 1.0],
           "coco": {"train2017": n, "val2017": 1, "train2014": 1, "val2014": 1, "karpathy_test": 1}}
    synthesize("coco", cfg, tmp / "raw" / "coco")
    seconds = timed(lambda: prepare("coco", tmp / "raw", tmp / "prepared", {"shard_size_mb": 64,
                                                                           "texture_threshold": 8.0}))
    images = json.loads((tmp / "prepared" / "summary.json").read_text())["images"]
    return {"images": images, "image_size": size, "seconds": round(seconds, 2),
            "images_per_s_one_core": round(images / seconds, 1)}


def make_images(n: int, loose: Path, sharded: Path, shard_mb: float) -> None:
    rng = np.random.default_rng(0)
    (loose / "images").mkdir(parents=True)
    sharded.mkdir(parents=True)
    writer = ShardWriter(sharded, shard_mb, 8.0)
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
        key = f"images/{i:06d}.png"
        (loose / key).write_bytes(buf.getvalue())
        writer.add(key, buf.getvalue())
    writer.close()
    (sharded / RECORDS).write_text("")


def bench_dvc(repo: Path) -> dict:
    result = {}
    for name in ("loose", "sharded"):
        add = timed(lambda: sh(["dvc", "add", name], repo))
        status = [timed(lambda: sh(["dvc", "status", f"{name}.dvc"], repo)) for _ in range(3)]
        files = sum(1 for _ in (repo / name).rglob("*") if _.is_file())
        result[name] = {"files": files, "dvc_add_s": round(add, 2), "dvc_status_s": round(statistics.median(status), 3)}
    for key in ("dvc_add_s", "dvc_status_s"):
        result[f"{key}_loose_over_sharded"] = round(result["loose"][key] / result["sharded"][key], 1)
    return result


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root on Linux) so reads come from disk; False if not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def bench_reading(loose: Path, sharded: Path) -> dict:
    files = sorted((loose / "images").iterdir())

    def read_loose():
        for f in files:
            Image.open(f).convert("RGB")

    def read_sharded():
        with PreparedDataset(sharded) as ds:
            for key in ds.index.index:
                ds.image(key)  # decoded, RGB

    result = {"images": len(files)}
    read_loose(), read_sharded()  # fill the page cache for the warm pass
    for cache in ("warm", "cold"):
        if cache == "cold" and not drop_page_cache():
            continue
        loose_s = timed(read_loose)
        if cache == "cold":
            drop_page_cache()
        sharded_s = timed(read_sharded)
        result[cache] = {"loose_images_per_s": round(len(files) / loose_s),
                         "sharded_images_per_s": round(len(files) / sharded_s),
                         "sharded_over_loose": round(loose_s / sharded_s, 2)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--prepare-images", type=int, default=3000)
    parser.add_argument("--prepare-sizes", type=int, nargs="+", default=[64, 512],
                        help="synthetic image sides (px): 64 is the default world, 512 near COCO's")
    parser.add_argument("--shard-mb", type=float, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        report = {"bench": "data_stage", "machine": machine_info(),
                  "prepare": [bench_prepare(args.prepare_images, size, tmp / f"prepare-{size}")
                              for size in args.prepare_sizes]}
        repo = tmp / "repo"
        repo.mkdir()
        sh(["git", "init", "-q"], repo)
        sh(["dvc", "init", "-q"], repo)
        make_images(args.images, repo / "loose", repo / "sharded", args.shard_mb)
        report["dvc"] = bench_dvc(repo)
        report["reading"] = bench_reading(repo / "loose", repo / "sharded")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
