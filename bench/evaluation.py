"""SDS-CLIP's evaluation of one model (Winoground, ARO x4, SugarCrepe, zero-shot): throughput, and
whether each image and caption is embedded once.

Runs the project's `evaluate_clip` on the default synthetic world for two CLIP models with different
weights, counting every image and string handed to the CLIP embedder (by content hash): how many
were embedded more than once within a benchmark (should be 0) and across benchmarks (the same
picture in two benchmarks is embedded by each), images/s and strings/s of the embedder and of the
whole evaluation. The second model must embed exactly as much as the first (nothing served from
an earlier model) and score differently.

    python bench/evaluation.py --out bench/results/evaluation-cpu2.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
import yaml

from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.synthetic import synthesize
from pipeline_steps.evaluate import compositional
from pipeline_steps.hardware import machine_info
from pipeline_steps.models.clip import load_clip, model_config, save_clip

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = ["winoground", "aro_vg_relation", "aro_vg_attribution", "aro_coco_order", "aro_flickr_order",
              "sugarcrepe"]


class Counting:
    """Wraps ClipEmbedder.images/texts: content hashes per benchmark, time spent embedding."""

    def __init__(self):
        self.images: dict[str, Counter] = {}
        self.texts: dict[str, Counter] = {}
        self.seconds = {"images": 0.0, "texts": 0.0}
        self.current = ""
        images, texts = compositional.ClipEmbedder.images, compositional.ClipEmbedder.texts
        counter = self

        def count_images(emb, batch):
            for im in batch:
                counter.images.setdefault(counter.current, Counter())[
                    hashlib.sha1(im.tobytes() + str(im.size).encode()).hexdigest()] += 1
            start = time.perf_counter()
            out = images(emb, batch)
            counter.seconds["images"] += time.perf_counter() - start
            return out

        def count_texts(emb, batch):
            for t in batch:
                counter.texts.setdefault(counter.current, Counter())[t] += 1
            start = time.perf_counter()
            out = texts(emb, batch)
            counter.seconds["texts"] += time.perf_counter() - start
            return out

        compositional.ClipEmbedder.images, compositional.ClipEmbedder.texts = count_images, count_texts
        # tag each benchmark's calls: PreparedDataset is opened once per benchmark
        opened = compositional.PreparedDataset.__init__

        def tagged(data, root):
            counter.current = Path(root).name
            opened(data, root)

        compositional.PreparedDataset.__init__ = tagged


def summary(counts: dict[str, Counter]) -> dict:
    total = sum(sum(c.values()) for c in counts.values())
    within = sum(sum(n - 1 for n in c.values() if n > 1) for c in counts.values())
    everywhere = Counter()
    for c in counts.values():
        everywhere.update(dict.fromkeys(c, 1))
    return {"embedded": total, "embedded_twice_within_a_benchmark": within,
            "distinct": len(everywhere), "in_several_benchmarks": sum(1 for n in everywhere.values() if n > 1),
            "per_benchmark": {k: sum(c.values()) for k, c in counts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = params["evaluate"]
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for source in ("winoground", "aro", "coco", "flickr30k", "sugarcrepe", "zeroshot"):
            synthesize(source, params["synthetic"], tmp / "raw" / source)
        datasets = BENCHMARKS + cfg["zeroshot"]["datasets"]
        for d in datasets:
            prepare(d, tmp / "raw", tmp / "prepared" / d, params["prepare"])
        architecture = params["models"]["clip"]["clip-tiny"]["architecture"]
        runs = {}
        for seed in (0, 1):
            torch.manual_seed(seed)
            clip, _, _ = load_clip(architecture)
            save_clip(clip, model_config(architecture), tmp / f"clip-{seed}")
            counting = Counting()
            start = time.perf_counter()
            report = compositional.evaluate_clip(tmp / f"clip-{seed}", [tmp / "prepared" / d for d in datasets],
                                                 cfg, torch.device("cpu"))
            wall = time.perf_counter() - start
            images, texts = summary(counting.images), summary(counting.texts)
            runs[f"model-{seed}"] = {
                "wall_s": wall, "images": images, "texts": texts,
                "embedder_images_per_s": images["embedded"] / counting.seconds["images"],
                "embedder_texts_per_s": texts["embedded"] / counting.seconds["texts"],
                "images_per_s_whole_evaluation": images["embedded"] / wall,
                "winoground_overall": report["winoground"]["overall"],
                "report_sha1": hashlib.sha1(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()}
    a, b = runs["model-0"], runs["model-1"]
    result = {"bench": "evaluation", "machine": machine_info(),
              "torch_threads": 1, "model": architecture, "runs": runs,
              "second_model_embeds_as_much": a["images"]["embedded"] == b["images"]["embedded"]
              and a["texts"]["embedded"] == b["texts"]["embedded"],
              "second_model_scores_differently": a["report_sha1"] != b["report_sha1"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
