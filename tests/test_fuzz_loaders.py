"""Malformed annotation files, drawn at random: every format loader either reads the file or raises
the project's FormatError naming the file; it never fails with another exception."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_steps.data.prepare import ITEMS
from pipeline_steps.data.records import FormatError

# dataset -> the annotation file (under the raw root) whose mutations its loader must survive
TARGETS = {
    "coco": "coco/annotations/captions_train2017.json",
    "winoground": "winoground/examples.jsonl",
    "aro_vg_relation": "aro/visual_genome_relation.json",
    "aro_vg_attribution": "aro/visual_genome_attribution.json",
    "aro_coco_order": "coco/coco_karpathy_test.json",
    "sugarcrepe": "sugarcrepe/data/swap_att.json",
    "vqa": "vqa/v2_mscoco_train2014_annotations.json",
    "snli_ve": "snli_ve/snli_ve_dev.jsonl",
    "vcr": "vcr/train.jsonl",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)

mutations = st.one_of(
    st.tuples(st.just("delete_key"), st.integers(0, 10**6), st.integers(0, 50), st.none()),
    st.tuples(st.just("replace_value"), st.integers(0, 10**6), st.integers(0, 50), json_values),
    st.tuples(st.just("replace_node"), st.integers(0, 10**6), st.none(), json_values),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.none(), st.none()),
    st.tuples(st.just("insert_byte"), st.integers(0, 10**6), st.integers(0, 255), st.none()),
)


def nodes(value, found: list) -> list:
    """Every JSON object and list in ``value``, depth first."""
    if isinstance(value, dict):
        found.append(value)
        for v in value.values():
            nodes(v, found)
    elif isinstance(value, list):
        found.append(value)
        for v in value:
            nodes(v, found)
    return found


def mutate(data: bytes, jsonl: bool, mutation) -> bytes:
    kind, where, which, value = mutation
    if kind == "truncate":
        return data[:where % (len(data) + 1)]
    if kind == "insert_byte":
        at = where % (len(data) + 1)
        return data[:at] + bytes([which]) + data[at:]
    docs = [json.loads(line) for line in data.decode().splitlines() if line.strip()] if jsonl else [json.loads(data)]
    containers = nodes(docs, [])[1:] if jsonl else nodes(docs[0], [])
    target = containers[where % len(containers)]
    if kind == "replace_node":
        # the container itself becomes another value, inside its parent
        for parent in nodes(docs, []):
            items = parent.items() if isinstance(parent, dict) else enumerate(parent)
            for key, child in list(items):
                if child is target:
                    parent[key] = value
                    break
    elif isinstance(target, dict) and target:
        key = sorted(target)[which % len(target)]
        if kind == "delete_key":
            del target[key]
        else:
            target[key] = value
    elif isinstance(target, list) and target:
        if kind == "delete_key":
            del target[which % len(target)]
        else:
            target[which % len(target)] = value
    if jsonl:
        return "".join(json.dumps(d) + "\n" for d in docs).encode()
    return json.dumps(docs[0]).encode()


@pytest.fixture(scope="module")
def raw_copy(small_world, tmp_path_factory) -> Path:
    _, raw = small_world
    root = tmp_path_factory.mktemp("fuzz") / "raw"
    shutil.copytree(raw, root)
    return root


@pytest.mark.parametrize("dataset", sorted(TARGETS))
def test_loaders_read_or_name_the_file_for_any_malformed_record(raw_copy, dataset):
    path = raw_copy / TARGETS[dataset]
    original = path.read_bytes()
    # the untouched file reads
    assert sum(1 for _ in ITEMS[dataset](raw_copy)) > 0

    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(mutation=mutations)
    def check(mutation):
        path.write_bytes(mutate(original, path.suffix == ".jsonl", mutation))
        try:
            for _ in ITEMS[dataset](raw_copy):
                pass
        except FormatError as e:
            assert str(e).startswith(str(raw_copy)), e  # names the file (or the missing image)
        finally:
            path.write_bytes(original)

    check()
