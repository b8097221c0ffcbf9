"""SDS-CLIP's lambda is selected on held-out COCO captions: the best mean over seeds among lambda > 0."""

from __future__ import annotations

import pandas as pd

from pipeline_steps.aggregate.reports import SELECTION_METRIC, selected_lambdas


def rows(values: dict[tuple[str, float, int], float], metric: str = SELECTION_METRIC) -> pd.DataFrame:
    return pd.DataFrame([{"backbone": b, "lambda": lam, "seed": seed, "metric": metric, "value": v}
                         for (b, lam, seed), v in values.items()])


def test_the_best_mean_over_seeds_wins_not_the_best_single_seed():
    table = rows({("clip", 10.0, 0): 0.50, ("clip", 10.0, 1): 0.50, ("clip", 10.0, 2): 0.50,
                  ("clip", 40.0, 0): 0.70, ("clip", 40.0, 1): 0.30, ("clip", 40.0, 2): 0.40})
    assert selected_lambdas(table) == {"clip": 10.0}


def test_the_control_and_the_benchmarks_are_never_selected_on():
    table = pd.concat([
        rows({("clip", 0.0, 0): 0.99, ("clip", 10.0, 0): 0.40, ("clip", 40.0, 0): 0.45}),
        # a benchmark where lambda = 10 looks best must not change the choice
        rows({("clip", 10.0, 0): 0.90, ("clip", 40.0, 0): 0.10}, metric="Winoground group"),
    ])
    assert selected_lambdas(table) == {"clip": 40.0}


def test_ties_go_to_the_smallest_lambda_and_each_backbone_is_selected_alone():
    table = rows({("a", 40.0, 0): 0.5, ("a", 10.0, 0): 0.5, ("b", 10.0, 0): 0.2, ("b", 40.0, 0): 0.3})
    assert selected_lambdas(table) == {"a": 10.0, "b": 40.0}


def test_a_grid_without_lambda_above_zero_selects_nothing():
    assert selected_lambdas(rows({("clip", 0.0, 0): 0.5})) == {}
