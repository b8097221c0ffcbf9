"""Split properties: nesting, stratification, determinism, disjoint domain-shift sides."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import smoke_params
from pipeline_steps import splits
from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.registry import TASKS
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.grid import percent_name
from pipeline_steps.io import tree_digest


@pytest.fixture(scope="module")
def built(small_world, tmp_path_factory):
    """{task: (records by id, {split name: split doc}, split dir, prepared dir)}."""
    _, raw = small_world
    base = tmp_path_factory.mktemp("splits")
    cfg = smoke_params()["splits"]
    out = {}
    for task in TASKS:
        prepared = base / "prepared" / task
        prepare(task, raw, prepared, {"shard_size_mb": 1, "texture_threshold": 8.0})
        names = splits.build(task, prepared, base / task, cfg)
        docs = {n: json.loads((base / task / f"{n}.json").read_text()) for n in names}
        with PreparedDataset(prepared) as data:
            records = {r["id"]: r for r in data.records()}
        out[task] = (records, docs, base / task, prepared)
    return out


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.sampled_from("abcde"), min_size=1, max_size=300),
       fractions=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=6, unique=True),
       seed=st.integers(0, 10))
def test_lowshot_subsets_are_nested_stratified_and_deterministic(labels, fractions, seed):
    ids = [f"r{i}" for i in range(len(labels))]
    subsets = splits.nested_lowshot(ids, labels, fractions, seed)
    assert subsets == splits.nested_lowshot(ids, labels, fractions, seed)
    label_of = dict(zip(ids, labels))
    totals = Counter(labels)
    ordered = sorted(subsets)
    for small, large in zip(ordered, ordered[1:]):
        assert set(subsets[small]) <= set(subsets[large])
    for f, chosen in subsets.items():
        assert chosen, "a training set is never empty"
        counts = Counter(label_of[i] for i in chosen)
        if sum(int(f * n + 0.5) for n in totals.values()) > 0:
            # each label contributes round(f * its size), so proportions follow the full set
            assert counts == {k: int(f * n + 0.5) for k, n in totals.items() if int(f * n + 0.5)}


def test_every_configured_split_is_written(built):
    cfg = smoke_params()["splits"]
    for task, (_, docs, _, _) in built.items():
        assert list(docs) == splits.split_names(task, cfg)
        assert f"lowshot-{percent_name(cfg['lowshot']['fractions'][0])}-seed0" in docs


def test_lowshot_files_are_nested_per_seed_and_use_the_full_eval_split(built):
    cfg = smoke_params()["splits"]
    fractions = sorted(cfg["lowshot"]["fractions"])
    for task, (records, docs, _, _) in built.items():
        full = docs["full"]
        assert all(records[i]["split"] == TASKS[task]["train"] for i in full["train"])
        for seed in cfg["lowshot"]["seeds"]:
            chain = [set(docs[splits.lowshot_name(f, seed)]["train"]) for f in fractions]
            assert all(a <= b for a, b in zip(chain, chain[1:])), (task, seed)
            assert chain[-1] <= set(full["train"])
            assert docs[splits.lowshot_name(fractions[0], seed)]["eval"] == full["eval"]
        first = [set(docs[splits.lowshot_name(fractions[1], s)]["train"]) for s in cfg["lowshot"]["seeds"]]
        assert first[0] != first[1], "different seeds draw different subsets"


def test_splits_are_deterministic(built, tmp_path):
    records, docs, split_dir, prepared = built["vcr"]
    splits.build("vcr", prepared, tmp_path / "vcr", smoke_params()["splits"])
    assert tree_digest(tmp_path / "vcr") == tree_digest(split_dir)


def test_vcr_shifts_have_disjoint_movies_and_sources(built):
    records, docs, _, _ = built["vcr"]
    movie = docs["shift-movie"]
    train_movies = {records[i]["movie"] for i in movie["train"]}
    eval_movies = {records[i]["movie"] for i in movie["eval"]}
    assert train_movies and eval_movies and not train_movies & eval_movies
    assert not set(movie["train"]) & set(movie["eval"])
    labelled = {i for i, r in records.items() if r["answer_label"] is not None}
    assert set(movie["train"]) | set(movie["eval"]) == labelled
    source = docs["shift-source"]
    assert {records[i]["source"] for i in source["train"]} == {"lsmdc"}
    assert {records[i]["source"] for i in source["eval"]} == {"movieclips"}


def test_snli_ve_domain_shift_trains_plain_and_evaluates_textured(built):
    records, docs, _, prepared = built["snli_ve"]
    shift = docs["shift-domain"]
    with PreparedDataset(prepared) as data:
        assert {data.domain(records[i]["image"]) for i in shift["train"]} == {"plain"}
        assert {data.domain(records[i]["image"]) for i in shift["eval"]} == {"textured"}
    train_images = {records[i]["image"] for i in shift["train"]}
    assert not train_images & {records[i]["image"] for i in shift["eval"]}
    assert shift["stats"]["train_domains"] == {"plain": len(shift["train"])}


def test_vqa_priors_shift_keeps_answer_groups_whole_and_changes_priors(built):
    records, docs, _, _ = built["vqa"]
    shift = docs["shift-priors"]
    assert not set(shift["train"]) & set(shift["eval"])
    assert len(shift["train"]) + len(shift["eval"]) == len(records)
    group = lambda i: (records[i]["question_type"], records[i]["multiple_choice_answer"])  # noqa: E731
    assert not {group(i) for i in shift["train"]} & {group(i) for i in shift["eval"]}
    # every question type is trained on, and the evaluated types meet answers unseen in training
    assert {records[i]["question_type"] for i in shift["train"]} == {r["question_type"] for r in records.values()}
    assert shift["eval"]


def test_summary_table_lists_every_split(built, tmp_path):
    dirs = [built[t][2] for t in TASKS]
    table = splits.summarize(dirs, tmp_path / "summary.csv", tmp_path / "summary.md")
    assert len(table) == sum(len(built[t][1]) for t in TASKS)
    row = table[(table.dataset == "snli_ve") & (table.split == "full")].iloc[0]
    assert row.train == len(built["snli_ve"][1]["full"]["train"]) and row.train_labels == 3
    assert (tmp_path / "summary.md").read_text().startswith("| dataset | split |")


def test_split_with_unknown_ids_names_them(built, tmp_path):
    records, docs, split_dir, _ = built["snli_ve"]
    doc = dict(docs["full"], train=docs["full"]["train"] + ["no-such-pair", "another-missing"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="2 ids are not in the dataset: another-missing, no-such-pair"):
        splits.load_split(path, set(records))
    assert splits.load_split(split_dir / "full.json", set(records))["name"] == "full"
