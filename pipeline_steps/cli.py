"""``python -m pipeline_steps <step> ...``: one sub-command per pipeline step.

Every step takes the params file(s) and explicit input/output paths, so it runs the same from a
Snakemake rule, a SLURM job, a test or a shell.  Several ``--params`` files merge left to right
(as Snakemake's ``--configfile``); the result is validated against the schema before anything runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from . import config
from .errors import InputError, ParamsError, PipelineError

log = logging.getLogger("pipeline_steps")


def _synthesize(params: dict, args: argparse.Namespace) -> None:
    from .data.synthetic import synthesize

    synthesize(args.source, params["synthetic"], args.out)


def _acquire(params: dict, args: argparse.Namespace) -> None:
    from .data.acquire import acquire

    summary = acquire(args.source, params["data"], args.downloads, args.out)
    log.info("acquired %s: %d files", args.source, len(summary["files"]))


def _build_mirror(params: dict, args: argparse.Namespace) -> None:
    from .data.mirror import build_mirror

    checksums = build_mirror(args.raw, args.out)
    log.info("mirror of %d files in %s (checksums in %s)", len(checksums), args.out, args.out / "checksums.json")


def _aggregate(params: dict, args: argparse.Namespace) -> None:
    from .aggregate import aggregate

    aggregate(args.metrics, args.models, args.out)
    log.info("tables, figures and metrics.json written under %s", args.out)


def _prepare(params: dict, args: argparse.Namespace) -> None:
    from .data.prepare import prepare

    summary = prepare(args.dataset, args.raw, args.out, params["prepare"])
    log.info("prepared %s: %d records, %d images in %d shards", args.dataset, summary["records"],
             summary["images"], summary["shards"])


def _splits(params: dict, args: argparse.Namespace) -> None:
    from .splits import build

    names = build(args.dataset, args.prepared, args.out, params["splits"])
    log.info("wrote %d splits of %s to %s", len(names), args.dataset, args.out)


def _splits_summary(params: dict, args: argparse.Namespace) -> None:
    from .splits import summarize

    table = summarize(args.split_dirs, args.csv, args.markdown)
    log.info("summarised %d splits", len(table))


def _threads(args: argparse.Namespace) -> None:
    import torch

    from .hardware import machine_info

    torch.set_num_threads(args.threads)
    # the job log says what ran it: timings differ between CPU kinds, results must not
    info = machine_info()
    log.info("torch %s on %s, kernels %s, %d thread(s)", info["torch"], info["cpu_model"], info["cpu_capability"],
             args.threads)


def _pretrain_clip(params: dict, args: argparse.Namespace) -> None:
    from .train.pretrain import pretrain_clip

    _threads(args)
    pretrain_clip(params["models"]["clip"][args.name], params["pretrain"]["clip"], args.prepared,
                  args.out, args.work, params["pretrain"]["seed"])


def _pretrain_diffusion(params: dict, args: argparse.Namespace) -> None:
    from .train.pretrain import pretrain_diffusion

    _threads(args)
    pretrain_diffusion(params["models"]["diffusion"]["tiny"], params["pretrain"]["diffusion"],
                       args.prepared, args.out, args.work, params["pretrain"]["seed"])


def _pretrain_student(params: dict, args: argparse.Namespace) -> None:
    from .train.pretrain import pretrain_student

    _threads(args)
    prepared = {path.name: path for path in args.prepared}
    if "coco" not in prepared:
        raise InputError("pretrain-student needs the prepared coco captions among --prepared")
    pretrain_student(params["models"]["student"]["tiny"], params["pretrain"]["student"], prepared,
                     args.out, args.work, params["pretrain"]["seed"], params["pretrain"]["student_domains"])


def _fetch_pretrained(params: dict, args: argparse.Namespace) -> None:
    from .models.fetch import fetch_clip, fetch_diffusion, fetch_student

    if args.kind == "clip":
        spec = params["models"]["clip"][args.name]
        fetch_clip(spec["architecture"], spec["pretrained"], args.out)
    elif args.kind == "student":
        spec = params["models"]["student"]
        fetch_student(spec["hub_id"], spec["revision"], args.out, params["models"]["lock"])
    else:
        spec = params["models"]["diffusion"]
        fetch_diffusion(spec["hub_id"], spec["revision"], args.out, params["models"]["lock"])


def _cache_text_states(params: dict, args: argparse.Namespace) -> None:
    from .features import cache_text_states

    _threads(args)
    summary = cache_text_states(args.teacher, args.prepared, args.out)
    log.info("cached %d caption states %s", summary["captions"], summary["shape"])


def _cache_clip_features(params: dict, args: argparse.Namespace) -> None:
    from .clip_teacher import cache_clip_features
    from .hardware import device_for

    _threads(args)
    summary = cache_clip_features(args.task, args.teacher, args.prepared, args.out,
                                  params["clip_td"]["teacher"], device_for())
    log.info("cached CLIP features of %d %s examples (%d images)", summary["examples"], args.task,
             summary["images"])


def _train_clip_td(params: dict, args: argparse.Namespace) -> None:
    from .train.clip_td import train_clip_td

    _threads(args)
    train_clip_td(args.task, args.method, params["clip_td"], args.seed, args.student, args.prepared,
                  args.split, args.teacher, args.teacher_cache, args.out, args.work)


def _evaluate_clip_td(params: dict, args: argparse.Namespace) -> None:
    from .evaluate.vl_tasks import evaluate_clip_td
    from .io import atomic_write_json

    report = evaluate_clip_td(args.model, args.prepared, args.split, params["evaluate"])
    atomic_write_json(args.out, report)
    log.info("%s: %s", args.model, report["headline"])


def _train_sds_clip(params: dict, args: argparse.Namespace) -> None:
    from .train.sds_clip import train_sds_clip

    _threads(args)
    train_sds_clip(params["sds_clip"], args.lam, args.seed, args.clip, args.teacher, args.text_cache,
                   args.prepared, args.out, args.work)


def _evaluate_clip(params: dict, args: argparse.Namespace) -> None:
    from .evaluate.compositional import evaluate_clip
    from .io import atomic_dir, dumps_json
    from .hardware import device_for

    _threads(args)
    reports = evaluate_clip(args.model, args.prepared, params["evaluate"], device_for())
    with atomic_dir(args.out) as tmp:
        for name, report in reports.items():
            (tmp / f"{name}.json").write_text(dumps_json(report))


def _teacher_score(params: dict, args: argparse.Namespace) -> None:
    from .evaluate.teacher_score import teacher_winoground
    from .io import atomic_write_json
    from .hardware import device_for

    _threads(args)
    atomic_write_json(args.out, teacher_winoground(args.teacher, args.prepared, params["evaluate"],
                                                   device_for()))


def _validate_params(params: dict, args: argparse.Namespace) -> None:
    print(f"params are valid (mode: {params['mode']})")


STEPS = {
    "synthesize": (_synthesize, "generate one raw source of the synthetic world in its native format"),
    "acquire": (_acquire, "download (or find), verify and assemble one real raw source"),
    "build-mirror": (_build_mirror, "pack synthetic raw sources as the real download files, for a mirror"),
    "prepare": (_prepare, "normalise a raw dataset into records + image shards"),
    "splits": (_splits, "write the low-shot and domain-shift splits of a task dataset"),
    "splits-summary": (_splits_summary, "tabulate the sizes and label distributions of all splits"),
    "pretrain-clip": (_pretrain_clip, "train a tiny CLIP from scratch (synthetic world)"),
    "pretrain-diffusion": (_pretrain_diffusion, "train the tiny diffusion teacher (synthetic world)"),
    "pretrain-student": (_pretrain_student, "pretrain the tiny ViLT student, MLM + ITM (synthetic world)"),
    "fetch-pretrained": (_fetch_pretrained, "download published CLIP / SD / student weights (paper mode)"),
    "cache-text-states": (_cache_text_states, "cache the frozen SD text-encoder states of captions"),
    "cache-clip-features": (_cache_clip_features, "cache the frozen CLIP teacher's features of a task"),
    "train-sds-clip": (_train_sds_clip, "fine-tune CLIP with L_CLIP + lambda * L_SDS"),
    "train-clip-td": (_train_clip_td, "fine-tune the VL student on a task, with or without CLIP-TD"),
    "evaluate-clip-td": (_evaluate_clip_td, "evaluate a CLIP-TD run on its split's evaluation ids"),
    "evaluate-clip": (_evaluate_clip, "Winoground, ARO, SugarCrepe and zero-shot for one CLIP"),
    "teacher-score": (_teacher_score, "the diffusion teacher's own Winoground score"),
    "aggregate": (_aggregate, "tables, figures and headline metrics from every run's reports"),
    "validate-params": (_validate_params, "check params file(s) against the schema"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline_steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    parsers = {}
    for name, (_, help_text) in STEPS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", action="append", required=True, type=Path,
                       help="params YAML file; repeat to override (later files win)")
        parsers[name] = p
    # argument choices from the data registry alone: it is what every step's parser imports, so
    # keep it small (pipeline_steps/code_deps.py)
    from .data.registry import PREPARED_DATASETS, RAW_SOURCES, TASKS

    parsers["synthesize"].add_argument("--source", required=True, choices=RAW_SOURCES)
    parsers["synthesize"].add_argument("--out", required=True, type=Path, help="raw source directory")
    parsers["acquire"].add_argument("--source", required=True, choices=RAW_SOURCES)
    parsers["acquire"].add_argument("--downloads", required=True, type=Path,
                                    help="folder of downloaded files (one sub-folder per source)")
    parsers["acquire"].add_argument("--out", required=True, type=Path, help="raw source directory")
    parsers["build-mirror"].add_argument("--raw", required=True, type=Path, help="synthetic data/raw")
    parsers["build-mirror"].add_argument("--out", required=True, type=Path, help="mirror root folder")
    parsers["aggregate"].add_argument("--metrics", required=True, type=Path, help="results/metrics")
    parsers["aggregate"].add_argument("--models", nargs="*", type=Path, default=[],
                                      help="trained model folders (their dvclive curves)")
    parsers["aggregate"].add_argument("--out", required=True, type=Path, help="results folder")
    parsers["prepare"].add_argument("--dataset", required=True, choices=PREPARED_DATASETS)
    parsers["prepare"].add_argument("--raw", required=True, type=Path,
                                    help="directory holding the raw sources (data/raw)")
    parsers["prepare"].add_argument("--out", required=True, type=Path, help="prepared dataset directory")
    parsers["splits"].add_argument("--dataset", required=True, choices=sorted(TASKS))
    parsers["splits"].add_argument("--prepared", required=True, type=Path)
    parsers["splits"].add_argument("--out", required=True, type=Path, help="directory of split files")
    parsers["splits-summary"].add_argument("split_dirs", nargs="+", type=Path)
    parsers["splits-summary"].add_argument("--csv", required=True, type=Path)
    parsers["splits-summary"].add_argument("--markdown", required=True, type=Path)
    for name in ("pretrain-clip", "pretrain-diffusion", "pretrain-student", "cache-text-states",
                 "cache-clip-features", "train-sds-clip", "train-clip-td", "evaluate-clip",
                 "teacher-score"):
        parsers[name].add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    for name in ("pretrain-clip", "pretrain-diffusion", "pretrain-student", "train-sds-clip",
                 "train-clip-td"):
        parsers[name].add_argument("--work", required=True, type=Path,
                                   help="checkpoints and logs that survive a failed or preempted job")
    for name in ("pretrain-diffusion", "cache-text-states", "train-sds-clip"):
        parsers[name].add_argument("--prepared", required=True, type=Path, help="prepared COCO captions")
    parsers["pretrain-clip"].add_argument("--prepared", required=True, type=Path, nargs="+",
                                          help="prepared captions datasets: the corpus (pretrain.clip_corpus)")
    for name in ("pretrain-clip", "pretrain-diffusion", "pretrain-student", "fetch-pretrained",
                 "cache-text-states", "cache-clip-features", "train-sds-clip", "train-clip-td",
                 "evaluate-clip", "evaluate-clip-td", "teacher-score"):
        parsers[name].add_argument("--out", required=True, type=Path)
    parsers["pretrain-student"].add_argument("--prepared", required=True, type=Path, nargs="+",
                                             help="prepared coco (captions) and task datasets (vocabulary)")
    for name in ("cache-clip-features", "train-clip-td"):
        parsers[name].add_argument("--task", required=True, choices=sorted(TASKS))
    for name in ("cache-clip-features", "train-clip-td", "evaluate-clip-td"):
        parsers[name].add_argument("--prepared", required=True, type=Path, help="prepared task dataset")
    parsers["cache-clip-features"].add_argument("--teacher", required=True, type=Path,
                                                help="open_clip folder of the teacher CLIP")
    p = parsers["train-clip-td"]
    p.add_argument("--method", required=True, help="a key of clip_td.methods")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--student", required=True, type=Path, help="pretrained student folder")
    p.add_argument("--split", required=True, type=Path, help="split file (train ids are used)")
    p.add_argument("--teacher", type=Path, help="teacher CLIP folder (online teacher mode)")
    p.add_argument("--teacher-cache", type=Path, help="cached teacher features (cached mode)")
    parsers["evaluate-clip-td"].add_argument("--model", required=True, type=Path, help="CLIP-TD run folder")
    parsers["evaluate-clip-td"].add_argument("--split", required=True, type=Path,
                                             help="split file (eval ids are used)")
    parsers["pretrain-clip"].add_argument("--name", required=True, help="a key of models.clip")
    parsers["fetch-pretrained"].add_argument("--kind", required=True, choices=["clip", "diffusion", "student"])
    parsers["fetch-pretrained"].add_argument("--name", help="a key of models.clip (kind clip)")
    parsers["cache-text-states"].add_argument("--teacher", required=True, type=Path)
    p = parsers["train-sds-clip"]
    p.add_argument("--lam", required=True, type=float, help="weight of L_SDS (0: the control)")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--clip", required=True, type=Path, help="open_clip folder of the base CLIP")
    p.add_argument("--teacher", required=True, type=Path)
    p.add_argument("--text-cache", required=True, type=Path)
    parsers["evaluate-clip"].add_argument("--model", required=True, type=Path, help="open_clip folder")
    parsers["evaluate-clip"].add_argument("--prepared", required=True, type=Path, nargs="+",
                                          help="prepared benchmark datasets (found by folder name)")
    parsers["teacher-score"].add_argument("--teacher", required=True, type=Path)
    parsers["teacher-score"].add_argument("--prepared", required=True, type=Path,
                                          help="prepared Winoground")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = config.load(*args.params)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        STEPS[args.step][0](params, args)
    except PipelineError as e:
        # inputs, params or environment the user fixes: one clear line. Anything else is a bug and
        # keeps its traceback.
        print(f"error: {args.step}: {e}", file=sys.stderr)
        return 1
    log.info("%s finished in %.1f s", args.step, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
