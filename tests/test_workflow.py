"""`snakemake --cores 2` runs the data and splits stages end to end at smoke size."""

from __future__ import annotations

import json
import re
import shutil
import sys

from helpers import REPO, SNAKEMAKE, copy_project, run, smoke_params
from pipeline_steps.data.registry import TASKS, datasets_to_prepare
from pipeline_steps.data.synthetic import SOURCES
from pipeline_steps.splits import split_names


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    table = dry_run_output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_pipeline_produces_prepared_data_and_splits(local_run):
    for source in SOURCES:
        assert (local_run / "data/raw" / source / "SYNTHETIC.json").is_file()
    params = smoke_params()
    for dataset in datasets_to_prepare(params["evaluate"]["zeroshot"]["datasets"], params["pretrain"]["clip_corpus"]):
        root = local_run / "data/prepared" / dataset
        assert (root / "records.jsonl").stat().st_size > 0
        assert (root / "images.parquet").is_file() and list(root.glob("images-*.tar"))
    cfg = smoke_params()["splits"]
    for task in TASKS:
        written = sorted(p.stem for p in (local_run / "data/splits" / task).glob("*.json"))
        assert written == sorted(split_names(task, cfg))
    summary = (local_run / "data/splits/summary.csv").read_text().splitlines()
    assert len(summary) == 1 + sum(len(split_names(t, cfg)) for t in TASKS)
    # the pretrained student says how well it reads the image: masked words of every held-out COCO
    # caption, predicted with the image and with it blanked
    grounding = json.loads((local_run / "models/pretrained/vilt-tiny/train_summary.json").read_text())[
        "masked_word_accuracy"]
    assert grounding["captions"] == params["synthetic"]["coco"]["val2017"] * 5
    assert 0 <= grounding["with_image"] <= 1 and 0 <= grounding["blank_image"] <= 1
    # every job left its log and benchmark
    assert (local_run / "logs/prepare/vqa.log").read_text().count("prepared vqa") == 1
    assert (local_run / "benchmarks/splits/vcr.tsv").read_text().startswith("s\t")


def test_pipeline_writes_clip_td_metrics_for_every_task_setting_and_method(local_run):
    params = smoke_params()
    ctd = params["clip_td"]
    settings = {"vqa": ["full", "lowshot-50", "shift-priors"], "snli_ve": ["full", "lowshot-50", "shift-domain"],
                "vcr": ["full", "lowshot-50", "shift-movie", "shift-source"]}
    expected = {f"{task}-{setting}-{method}-s0.json" for task in ctd["tasks"] for setting in settings[task]
                for method in ("finetune", "naive", "targeted")}
    written = {p.name for p in (local_run / "results/metrics/clip_td").iterdir()}
    assert written == expected
    headline = {"vqa": ["vqa_accuracy"], "snli_ve": ["accuracy"], "vcr": ["q2a", "qa2r", "q2ar"]}
    for name in written:
        report = json.loads((local_run / "results/metrics/clip_td" / name).read_text())
        task = report["task"]
        assert name.startswith(task + "-") and report["examples"] > 0
        assert sorted(report["headline"]) == sorted(headline[task])
        assert all(0 <= v <= 1 for v in report["headline"].values())
        # every run also reports its image-ablated baselines, on the same metrics
        for ablation in ("blank_image", "shuffled_image"):
            assert sorted(report[ablation]["headline"]) == sorted(headline[task])
        run_dir = local_run / "models/clip_td" / name.removesuffix(".json")
        summary = json.loads((run_dir / "train_summary.json").read_text())
        assert summary["method"] in name and (run_dir / "student/config.json").is_file()
        # distillation happened exactly where the method asks for it
        assert ("loss_distill" in summary["final"]) == (summary["method"] != "finetune")


def test_results_hold_the_papers_tables_figures_and_a_report(local_run):
    import pandas as pd
    from PIL import Image

    results = local_run / "results"
    # CLIP-TD: one tidy row per task x metric x method x setting, equal to the runs' own reports
    table = pd.read_csv(results / "tables/clip_td.csv")
    # rows: finetune, naive, targeted and the blank- and shuffled-image baselines; VQA, SNLI-VE (3 settings),
    # VCR (4 x 3 metrics)
    assert len(table) == 5 * (3 + 3 + 4 * 3)
    ablations = ("blank_image", "shuffled_image")
    for row in table.itertuples():
        method = "finetune" if row.method in ablations else row.method
        report = json.loads((results / f"metrics/clip_td/{row.task}-{row.setting}-{method}-s0.json").read_text())
        headline = report[row.method]["headline"] if row.method in ablations else report["headline"]
        assert row.mean == headline[row.metric] and row.seeds == 1
    md = (results / "tables/clip_td.md").read_text()
    for section in ("VQA v2, vqa_accuracy", "SNLI-VE, accuracy", "VCR, q2a", "VCR, qa2r", "VCR, q2ar"):
        assert f"## {section}" in md
    assert "| method | full | low-shot 50% | shift: movie | shift: source |" in md and "**" in md
    # each split by the visual domain of its evaluation images: SNLI-VE's domain shift evaluates the
    # textured images alone, beside the full split's score on them
    domains = pd.read_csv(results / "tables/clip_td_domains.csv")
    snli = domains[(domains["task"] == "snli_ve") & (domains["method"] == "finetune")]
    assert set(snli[snli["setting"] == "shift-domain"]["domain"]) == {"textured"}
    assert set(snli[snli["setting"] == "full"]["domain"]) == {"plain", "textured"}
    report = json.loads((results / "metrics/clip_td/snli_ve-full-finetune-s0.json").read_text())
    assert all(r.mean == report["per_domain"][r.domain]["accuracy"] for r in snli[snli["setting"] == "full"].itertuples())
    assert "| method | full, plain (" in (results / "tables/clip_td_domains.md").read_text()
    # SDS-CLIP: base CLIP, the lambda = 0 control and SDS-CLIP at the lambda selected on COCO val, every
    # benchmark column and the selection score; then the sweep
    sds = (results / "tables/sds_clip.md").read_text()
    headline, sweep = sds.split("### clip-tiny: λ sweep")
    assert [line.split("|")[1].strip() for line in headline.splitlines() if line.startswith("| ")][1:] == \
        ["CLIP (base)", "COCO fine-tune (λ=0)", "SDS-CLIP (λ=1)"]
    assert "λ = 1, selected on COCO-val order (held-out COCO captions) among λ > 0." in headline
    assert "SDS-CLIP (λ=1)" in sweep
    assert all(column in headline for column in ("Winoground group", "ARO VG-R", "SugarCrepe", "zero-shot shapes",
                                                 "COCO-val order (selection)"))
    diagnostics = pd.read_csv(results / "tables/sds_clip_diagnostics.csv")
    assert list(diagnostics["run"]) == ["clip-tiny-lam1-s0"]
    assert (diagnostics[["grad_norm_clip_ln", "grad_norm_sds_ln", "grad_norm_sds_h_w"]] > 0).all(axis=None)
    assert 0 <= diagnostics["teacher_h_w_matched_wins"][0] <= 1 and diagnostics["h_w_init"][0] == "fit"
    assert r"\begin{tabular}" in (results / "tables/sds_clip.tex").read_text()
    for name in ("clip_td_lowshot", "clip_td_shift", "sds_clip_compositional", "sds_clip_lambda",
                 "teacher_vs_clip", "sds_clip_grad_norms", "training_curves"):
        with Image.open(results / f"figures/{name}.png") as image:
            assert image.width >= 400 and image.height >= 250, name
        assert (results / f"figures/{name}.svg").read_text().lstrip().startswith("<?xml")
    headline = json.loads((results / "metrics.json").read_text())
    assert set(headline["sds_clip"]["clip-tiny"]) == {"base", "lam0", "lam1", "selected"}
    assert headline["sds_clip"]["clip-tiny"]["selected"] == {"lambda": 1, **headline["sds_clip"]["clip-tiny"]["lam1"]}
    assert set(headline["clip_td"]["vcr"]["shift_movie"]) == {"finetune", "naive", "targeted", "blank_image",
                                                                   "shuffled_image"}
    run(SNAKEMAKE + ["--report", "results/report.html"], cwd=local_run)
    html = (results / "report.html").read_text()
    assert all(f"{name}.png" in html for name in ("clip_td_lowshot", "teacher_vs_clip")) and "clip_td.csv" in html


def test_a_second_run_has_nothing_to_do(local_run):
    proc = run(SNAKEMAKE + ["--cores", "2", "-n"], cwd=local_run)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_a_param_reruns_only_the_jobs_that_read_it(local_run, tmp_path):
    ctd_runs = {"vqa": 9, "snli_ve": 9, "vcr": 12}  # settings x 3 methods x 1 seed at smoke size
    override = tmp_path / "override.yaml"

    def dry_run(yaml_text: str) -> dict[str, int]:
        override.write_text(yaml_text)
        proc = run(SNAKEMAKE + ["--cores", "2", "-n", "--configfile", str(override)], cwd=local_run)
        return job_counts(proc.stdout)

    # distillation settings: only the runs that distil (naive, targeted), not fine-tuning, data or SDS-CLIP
    distilling = 2 * sum(ctd_runs.values()) // 3
    assert dry_run("clip_td: {distill: {loss: mse}}\n") == {
        "train_clip_td": distilling, "evaluate_clip_td": distilling, "aggregate": 1, "all": 1}
    # a task's own training override: that task's runs only
    assert dry_run("clip_td: {task_train: {vcr: {steps: 5}}}\n") == {
        "train_clip_td": ctd_runs["vcr"], "evaluate_clip_td": ctd_runs["vcr"], "aggregate": 1, "all": 1}
    # more split seeds rewrite every task's split files, so the CLIP-TD runs reading them follow
    n = sum(ctd_runs.values())
    assert dry_run("splits: {lowshot: {seeds: [0, 1, 2]}}\n") == {
        "splits": len(TASKS), "splits_summary": 1, "train_clip_td": n, "evaluate_clip_td": n, "aggregate": 1,
        "all": 1}
    # a VCR world change: VCR's data, splits and teacher features; the student's vocabulary covers
    # every task's text, so it is pretrained again and every CLIP-TD run follows; SDS-CLIP does not
    assert dry_run("synthetic: {vcr: {movies: 5}}\n") == {
        "synthesize": 1, "prepare": 1, "splits": 1, "splits_summary": 1, "cache_clip_features": 1,
        "pretrain_student": 1, "train_clip_td": n, "evaluate_clip_td": n, "aggregate": 1, "all": 1}


def test_the_paper_preset_dry_runs_the_full_grids_with_gpus(tmp_path):
    project = copy_project(tmp_path / "paper", smoke=False)
    proc = run(SNAKEMAKE + ["-n", "--configfile", "presets/paper.yaml"], cwd=project)
    counts = job_counts(proc.stdout)
    sds_runs = 3 * 4 * 3  # ViT-B/32, B/16, L/14 x lambda in {0, 1e-4, 1e-3, 1e-2} x 3 seeds
    ctd_runs = (6 + 6 + 7) * 3 * 3  # (full + 4 fractions + shifts) per task x 3 methods x 3 seeds
    assert counts == {"acquire": 9, "prepare": 12, "splits": 3, "splits_summary": 1, "fetch_clip": 3,
                      "fetch_diffusion": 1, "fetch_student": 1, "cache_text_states": 1, "cache_clip_features": 3,
                      "train_sds_clip": sds_runs, "evaluate_clip": sds_runs + 3, "teacher_score": 1,
                      "train_clip_td": ctd_runs, "evaluate_clip_td": ctd_runs, "aggregate": 1, "all": 1}
    # every job that runs a model asks for a GPU; data, downloads, scoring saved predictions
    # (evaluate_clip_td) and aggregation do not
    gpu_rules = {"cache_text_states", "cache_clip_features", "train_sds_clip", "evaluate_clip", "teacher_score",
                 "train_clip_td"}
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", proc.stdout, re.M | re.S)
    assert len(jobs) == sum(counts.values())
    for rule, body in jobs:
        assert ("gpu=1" in body) == (rule in gpu_rules), (rule, body)


def test_the_readme_rule_graph_is_the_workflows(tmp_path):
    project = copy_project(tmp_path / "project", smoke=False)
    proc = run(SNAKEMAKE + ["--rulegraph"], cwd=project)
    # the same nodes and edges (Snakemake prints the edges in no fixed order)
    assert sorted(proc.stdout.splitlines()) == sorted((REPO / "docs/rulegraph.dot").read_text().splitlines()), \
        "the workflow changed: regenerate docs/rulegraph.dot and .png (README, 'The DAG so far')"


def test_workflow_is_lint_clean(local_run):
    proc = run(SNAKEMAKE + ["--lint"], cwd=local_run)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_steps_run_by_hand_with_explicit_paths(local_run, tmp_path):
    step = [sys.executable, "-m", "pipeline_steps"]
    params = str(local_run / "params.yaml")
    proc = run(step + ["--help"], cwd=local_run)
    for name in ("synthesize", "prepare", "splits", "splits-summary", "validate-params"):
        assert name in proc.stdout
    shutil.copytree(local_run / "data/raw/snli_ve", tmp_path / "raw/snli_ve")
    shutil.copytree(local_run / "data/raw/flickr30k", tmp_path / "raw/flickr30k")
    run(step + ["prepare", "--params", params, "--dataset", "snli_ve", "--raw", str(tmp_path / "raw"),
                "--out", str(tmp_path / "snli_ve")], cwd=local_run)
    assert (tmp_path / "snli_ve/records.jsonl").read_bytes() == \
        (local_run / "data/prepared/snli_ve/records.jsonl").read_bytes()
    # a bad record: one line on stderr naming file, line and field; exit status 1; no output
    jsonl = tmp_path / "raw/snli_ve/snli_ve_test.jsonl"
    lines = jsonl.read_text().splitlines()
    lines[4] = lines[4].replace('"sentence2"', '"sentence_2"')
    jsonl.write_text("\n".join(lines) + "\n")
    proc = run(step + ["prepare", "--params", params, "--dataset", "snli_ve", "--raw",
                       str(tmp_path / "raw"), "--out", str(tmp_path / "again")], cwd=local_run, check=False)
    assert proc.returncode == 1
    assert f"error: prepare: {jsonl}: line 5: field 'sentence2': missing" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "again").exists()


def test_paper_mode_reads_placed_raw_data_and_downloads_the_rest(local_run, tmp_path):
    project = copy_project(tmp_path / "paper")
    override = tmp_path / "paper.yaml"
    override.write_text("mode: paper\n")
    shutil.copytree(local_run / "data/raw/winoground", project / "data/raw/winoground")
    proc = run(SNAKEMAKE + ["data/prepared/winoground", "--cores", "2", "--configfile", str(override)],
               cwd=project)
    assert job_counts(proc.stdout + proc.stderr) == {"prepare": 1}
    assert (project / "data/prepared/winoground/records.jsonl").is_file()
    # a raw source that is not there is downloaded (tests/test_acquire.py runs that end to end)
    proc = run(SNAKEMAKE + ["data/prepared/vqa", "-n", "--configfile", str(override)], cwd=project)
    assert job_counts(proc.stdout) == {"acquire": 2, "prepare": 1}  # VQA's files and COCO's images
    assert "data/raw/vqa" in proc.stdout and "data/raw/coco" in proc.stdout


def test_the_synthetic_full_preset_runs_the_whole_grid_longer(tmp_path):
    project = copy_project(tmp_path / "full", smoke=False)
    default = job_counts(run(SNAKEMAKE + ["-n"], cwd=project).stdout)
    full = job_counts(run(SNAKEMAKE + ["-n", "--configfile", "presets/synthetic-full.yaml"], cwd=project).stdout)
    from pipeline_steps.config import load
    from pipeline_steps.grid import clip_td_runs, sds_runs
    from pipeline_steps.train.clip_td import train_section

    params = load(project / "params.yaml", project / "presets/synthetic-full.yaml")
    defaults = load(project / "params.yaml")
    assert full["train_clip_td"] == len(clip_td_runs(params["clip_td"], params["splits"])) > default["train_clip_td"]
    assert full["train_sds_clip"] == len(sds_runs(params["sds_clip"])) > default["train_sds_clip"]
    # every low-shot fraction of the splits, 3 seeds
    assert params["clip_td"]["lowshot_fractions"] == params["splits"]["lowshot"]["fractions"]
    assert params["clip_td"]["seeds"] == [0, 1, 2]
    for task in ("vqa", "snli_ve", "vcr"):
        assert train_section(params["clip_td"], task)["epochs"] > train_section(defaults["clip_td"], task)["epochs"]
    # VQA's low-shot fractions train as long as its full split, so that its curve measures the data
    lengths = {task: train_section(params["clip_td"], task)["lowshot_length"] for task in ("vqa", "snli_ve", "vcr")}
    assert lengths == {"vqa": "full_split", "snli_ve": "split", "vcr": "split"}
    assert train_section(defaults["clip_td"], "vqa")["lowshot_length"] == "split"
    for model in ("clip", "diffusion", "student"):
        assert params["pretrain"][model]["steps"] > defaults["pretrain"][model]["steps"]
    # its domain shifts hold out a domain under a coloured light that the student's pretraining never saw
    assert defaults["synthetic"]["textured_light"] == [1.0, 1.0, 1.0] != params["synthetic"]["textured_light"]
    assert defaults["pretrain"]["student_domains"] == ["plain", "textured"]
    assert params["pretrain"]["student_domains"] == ["plain"]
    # and it runs only the shifts that are shifts in its world: not VCR's held-out movies
    assert defaults["splits"]["shift"]["vcr"] == ["movie", "source"] and params["splits"]["shift"]["vcr"] == ["source"]
