"""params.yaml validation: every error names the key path, in the steps and in Snakemake."""

from __future__ import annotations

import sys

import pytest
import yaml

from helpers import REPO, SNAKEMAKE, copy_project, run
from pipeline_steps import config


def write(tmp_path, text, name="override.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_with(tmp_path, text):
    return config.load(REPO / "params.yaml", write(tmp_path, text))


def test_default_params_are_valid_and_synthetic():
    params = config.load(REPO / "params.yaml")
    assert params["mode"] == "synthetic"


@pytest.mark.parametrize("override, message", [
    ("splits: {lowshot: {fractions: [0.1, 0.2, 1.5]}}",
     "splits.lowshot.fractions[2]: 1.5 is greater than the maximum of 1"),
    ("synthetic: {image_size: sixty-four}", "synthetic.image_size: 'sixty-four' is not of type 'integer'"),
    ("mode: papers", "mode: 'papers' is not one of ['synthetic', 'paper']"),
    ("splits: {lowshot: {seed: [0]}}",
     "splits.lowshot: Additional properties are not allowed ('seed' was unexpected)"),
    ("splits: {shift: {vcr: [movie, year]}}", "splits.shift.vcr[1]: 'year' is not one of"),
    ("prepare: {shard_size_mb: 0}", "prepare.shard_size_mb: 0 is less than or equal to the minimum of 0"),
    ("clip_td: {methods: {targeted: {weight: 1, top_k: 0, weighting: confidence}}}",
     "clip_td.methods.targeted.top_k: 0 is less than or equal to the minimum of 0"),
    ("clip_td: {distill: {loss: kl}}", "clip_td.distill.loss: 'kl' is not one of ['cosine', 'mse', 'l1']"),
    # rules between keys
    ("clip_td: {lowshot_fractions: [0.3]}", "clip_td.lowshot_fractions[0]: 0.3 is not in splits.lowshot.fractions"),
    ("clip_td: {seeds: [0, 7]}", "clip_td.seeds[1]: 7 is not in splits.lowshot.seeds"),
    ("clip_td: {teacher: {clip: vit-b-16}}", "clip_td.teacher.clip: 'vit-b-16' is not a key of models.clip"),
])
def test_invalid_value_names_the_key(tmp_path, override, message):
    with pytest.raises(config.ParamsError) as info:
        load_with(tmp_path, override)
    assert message in str(info.value)


def test_missing_key_is_named(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    del params["splits"]["lowshot"]["seeds"]
    with pytest.raises(config.ParamsError, match=r"splits.lowshot: 'seeds' is a required property"):
        config.validate(params)


def test_overrides_merge_nested_keys(tmp_path):
    params = load_with(tmp_path, "synthetic: {coco: {train2017: 7}}")
    assert params["synthetic"]["coco"]["train2017"] == 7
    assert params["synthetic"]["coco"]["val2017"] == 300  # untouched sibling keys stay


def test_cli_step_rejects_bad_params_before_running(tmp_path):
    bad = write(tmp_path, "splits: {lowshot: {fractions: [0.1, 0.2, 1.5]}}")
    out = tmp_path / "coco"
    proc = run([sys.executable, "-m", "pipeline_steps", "synthesize", "--params", str(REPO / "params.yaml"),
                "--params", str(bad), "--source", "coco", "--out", str(out)], cwd=REPO, check=False)
    assert proc.returncode == 2
    assert "splits.lowshot.fractions[2]: 1.5 is greater than the maximum of 1" in proc.stderr
    assert not out.exists()


def test_snakemake_start_up_names_the_key(tmp_path):
    project = copy_project(tmp_path / "project", smoke=False)
    bad = write(tmp_path, "splits: {lowshot: {fractions: [0.1, 0.2, 1.5]}}")
    proc = run(SNAKEMAKE + ["-n", "--configfile", str(bad)], cwd=project, check=False)
    assert proc.returncode != 0
    assert "splits.lowshot.fractions[2]: 1.5 is greater than the maximum of 1" in proc.stdout + proc.stderr

    # a second --configfile flag would drop the first file silently (Snakemake keeps the last flag's)
    site = write(tmp_path, "sds_clip: {seeds: [0]}", "site.yaml")
    proc = run(SNAKEMAKE + ["-n", "--configfile", "presets/paper.yaml", "--configfile", str(site)],
               cwd=project, check=False)
    assert proc.returncode != 0
    assert "2 --configfile flags: Snakemake would read only the last one's files" in proc.stdout + proc.stderr


def test_aro_leaves_out_the_official_symmetric_relations_in_paper_mode_and_none_of_the_synthetic_ones():
    from pipeline_steps.config import load
    from pipeline_steps.data.scenes import OPPOSITE, RELATIONS

    paper = load(REPO / "params.yaml", REPO / "presets/paper.yaml")["evaluate"]["aro"]["symmetric_relations"]
    assert len(paper) == len(set(paper)) == 157
    assert {"next to", "sitting next to", "on the side of", "parked in front of", "by", "of"} <= set(paper)
    # the synthetic world's relations are directional (each has a distinct opposite): none is symmetric
    assert all(OPPOSITE[r] != r for r in RELATIONS)
    synthetic = load(REPO / "params.yaml")["evaluate"]["aro"]["symmetric_relations"]
    assert synthetic == []
