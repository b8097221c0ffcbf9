"""The run grid: names are formatted and read back by one module, and the grid is what params say."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from helpers import smoke_params
from pipeline_steps import grid

BACKBONES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_.-]{0,20}", fullmatch=True).filter(lambda s: not s.startswith("base-"))
LAMBDAS = st.floats(min_value=0, max_value=1e3, allow_nan=False).map(lambda x: float(f"{x:g}"))


@given(BACKBONES, LAMBDAS, st.integers(0, 999))
def test_sds_run_names_read_back_as_the_run(backbone, lam, seed):
    assert grid.parse_sds_run(grid.sds_run_name(backbone, lam, seed)) == grid.SdsRun(backbone, lam, seed)


@given(st.sampled_from(["vqa", "snli_ve", "vcr", "toy_task"]),
       st.sampled_from(["full", "lowshot-1", "lowshot-0.1", "lowshot-25", "shift-domain", "shift-priors"]),
       st.sampled_from(["finetune", "naive", "targeted", "my-method"]), st.integers(0, 99))
def test_clip_td_run_names_read_back_as_the_run(task, setting, method, seed):
    name = grid.clip_td_run_name(task, setting, method, seed)
    assert grid.parse_clip_td_run(name) == grid.ClipTdRun(task, setting, method, seed)


def test_base_runs_and_foreign_names():
    assert grid.parse_sds_run("base-clip-tiny") == grid.SdsRun("clip-tiny", None, 0)
    assert grid.parse_sds_run("clip-tiny-lam0.5-s1").lam == 0.5
    assert grid.parse_sds_run("notes") is None and grid.parse_clip_td_run("vqa-full") is None


def test_the_grid_follows_the_params():
    params = smoke_params()
    sds, ctd = params["sds_clip"], params["clip_td"]
    assert len(grid.sds_runs(sds)) == len(sds["backbones"]) * len(sds["lambdas"]) * len(sds["seeds"])
    assert grid.evaluated_clip_runs(sds)[:len(sds["backbones"])] == [f"base-{b}" for b in sds["backbones"]]
    runs = [grid.parse_clip_td_run(r) for r in grid.clip_td_runs(ctd, params["splits"])]
    assert {r.task for r in runs} == set(ctd["tasks"]) and {r.method for r in runs} == set(ctd["methods"])
    for task in ctd["tasks"]:
        settings = grid.clip_td_settings(task, ctd, params["splits"])
        assert settings[0] == "full"
        assert [s for s in settings if s.startswith("shift-")] == \
            [f"shift-{k}" for k in params["splits"]["shift"].get(task, [])]
    zeroshot = params["evaluate"]["zeroshot"]["datasets"]
    assert grid.evaluated_datasets(params["evaluate"])[-len(zeroshot) - 1:] == [*zeroshot, "coco"]
