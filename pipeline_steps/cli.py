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

log = logging.getLogger("pipeline_steps")


def _synthesize(params: dict, args: argparse.Namespace) -> None:
    from .data.synthetic import synthesize

    synthesize(args.source, params["synthetic"], args.out)


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


def _validate_params(params: dict, args: argparse.Namespace) -> None:
    print(f"params are valid (mode: {params['mode']})")


STEPS = {
    "synthesize": (_synthesize, "generate one raw source of the synthetic world in its native format"),
    "prepare": (_prepare, "normalise a raw dataset into records + image shards"),
    "splits": (_splits, "write the low-shot and domain-shift splits of a task dataset"),
    "splits-summary": (_splits_summary, "tabulate the sizes and label distributions of all splits"),
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
    from .data.registry import PREPARED_DATASETS, RAW_SOURCES, TASKS

    parsers["synthesize"].add_argument("--source", required=True, choices=RAW_SOURCES)
    parsers["synthesize"].add_argument("--out", required=True, type=Path, help="raw source directory")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = config.load(*args.params)
    except config.ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        STEPS[args.step][0](params, args)
    except (ValueError, FileNotFoundError) as e:
        # data and configuration problems: one clear line, no traceback
        print(f"error: {args.step}: {e}", file=sys.stderr)
        return 1
    log.info("%s finished in %.1f s", args.step, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
