"""Prepared datasets: every record and image survives, shards are readable, failures leave nothing."""

from __future__ import annotations

import shutil

import pytest

from pipeline_steps.data import registry, snli_ve, vcr
from pipeline_steps.data.prepare import prepare
from pipeline_steps.data.scenes import make_scene
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.errors import InputError
from pipeline_steps.io import tree_digest

CFG = {"shard_size_mb": 0.03, "texture_threshold": 8.0}


@pytest.fixture(scope="module")
def prepared(small_world, tmp_path_factory):
    _, raw = small_world
    out = tmp_path_factory.mktemp("prepared")
    # the synthetic world's zero-shot sets (CIFAR comes from paper mode: tests/test_acquire.py)
    synthetic = registry.datasets_to_prepare(["zeroshot_shapes", "zeroshot_colors"], ["flickr30k"])
    return {d: (prepare(d, raw, out / d, CFG), out / d) for d in synthetic}


def test_every_dataset_prepares_with_unique_ids_and_readable_images(prepared, small_world):
    _, raw = small_world
    for dataset, (summary, root) in prepared.items():
        with PreparedDataset(root) as data:
            records = list(data.records())
            assert len(records) == summary["records"] > 0
            assert len({r["id"] for r in records}) == len(records), dataset
            keys = {r[k] for r in records for k in ("image", "image_0", "image_1") if k in r}
            assert keys == set(data.index.index), dataset
            for key in sorted(keys)[:25]:
                # stored bytes are the original file's bytes
                source_dirs = [raw / s for s in registry.PREPARED_FROM[dataset]]
                originals = [d / key for d in source_dirs if (d / key).is_file()]
                assert originals and data.image_bytes(key) == originals[0].read_bytes()
                assert data.image(key).size == (64, 64)


def test_small_shard_size_splits_images_over_several_shards(prepared):
    summary, root = prepared["coco"]
    assert summary["shards"] > 1
    assert len(list(root.glob("images-*.tar"))) == summary["shards"]
    assert max(p.stat().st_size for p in root.glob("images-*.tar")) < 0.03 * 1024 * 1024 + 64 * 1024


def test_task_records_keep_labels_and_splits(prepared, small_world):
    cfg, raw = small_world
    with PreparedDataset(prepared["snli_ve"][1]) as data:
        records = list(data.records())
    assert {r["split"] for r in records} == set(snli_ve.SPLITS)
    assert {r["label"] for r in records} == set(snli_ve.LABELS)
    with PreparedDataset(prepared["vcr"][1]) as data:
        test = list(data.records("test"))
    assert len(test) == cfg["vcr"]["test"] and all(r["answer_label"] is None for r in test)
    assert len(vcr.load(raw / "vcr", "val")) == len(list(PreparedDataset(prepared["vcr"][1]).records("val")))


def test_flickr30k_captions_hold_out_the_evaluation_images(prepared, small_world):
    """The CLIP's pretraining corpus never holds an image that ARO's Flickr order set or SNLI-VE's dev and
    test splits read, and reads every other image's five captions."""
    cfg, raw = small_world
    from pipeline_steps.data import coco
    from pipeline_steps.train.data import CaptionedImages

    with PreparedDataset(prepared["flickr30k"][1]) as data:
        train = list(data.records("train"))
        test = list(data.records("test"))
    karpathy = {img.image_name for img in coco.load_karpathy_blip(raw / "flickr30k/flickr30k_test.json",
                                                                   raw / "flickr30k")}
    with PreparedDataset(prepared["snli_ve"][1]) as data:
        snli_eval = {r["image"] for r in data.records() if r["split"] != "train"}
    assert {r["image"] for r in test} == karpathy | snli_eval
    assert not {r["image"] for r in train} & (karpathy | snli_eval)
    assert len({r["image"] for r in train} | karpathy | snli_eval) == cfg["flickr30k"]["images"]
    assert len(train) == 5 * len({r["image"] for r in train})
    corpus = CaptionedImages([prepared["coco"][1], prepared["flickr30k"][1]], "train")
    coco_only = CaptionedImages(prepared["coco"][1], "train")
    assert len(corpus) == len(coco_only) + len(train)
    assert len(set(corpus.ids)) == len(corpus) and corpus.ids[:len(coco_only)] == coco_only.ids
    last = len(corpus) - 1
    assert corpus.captions([last]) == [train[-1]["caption"]] and corpus.pil_images([0, last])[1].size == (64, 64)


def test_measured_visual_domain_matches_the_generator_and_selects_pretraining_captions(prepared, small_world):
    from pipeline_steps.train.data import CaptionedImages
    cfg, _ = small_world
    with PreparedDataset(prepared["coco"][1]) as data:
        for key in data.index.index:
            image_set, name = key.split("/")
            index = int(name.removesuffix(".jpg")[-12:]) % 100_000
            truth = make_scene(cfg["seed"], image_set, index).domain
            assert data.domain(key) == truth, key
        plain = [r for r in data.records("train") if data.domain(r["image"]) == "plain"]
    # the student's pretraining reads one domain only (pretrain.student_domains)
    plain_only = CaptionedImages(prepared["coco"][1], "train", ["plain"])
    assert 0 < len(plain_only) == len(plain) < len(CaptionedImages(prepared["coco"][1], "train"))
    assert plain_only.ids == [r["id"] for r in plain]
    with pytest.raises(InputError, match="no 'train' records of domain"):
        CaptionedImages(prepared["coco"][1], "train", ["underwater"])


def test_prepare_is_deterministic(prepared, small_world, tmp_path):
    _, raw = small_world
    prepare("vqa", raw, tmp_path / "vqa", CFG)
    assert tree_digest(tmp_path / "vqa") == tree_digest(prepared["vqa"][1])


def test_corrupt_image_fails_naming_the_record_and_leaves_no_output(small_world, tmp_path):
    _, raw = small_world
    shutil.copytree(raw / "aro", tmp_path / "raw" / "aro")
    victim = sorted((tmp_path / "raw/aro/images").glob("*.jpg"))[3]
    victim.write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "prepared" / "aro_vg_relation"
    with pytest.raises(ValueError, match=rf"record '\d+': image 'images/{victim.name}' cannot be decoded"):
        prepare("aro_vg_relation", tmp_path / "raw", out, CFG)
    assert not out.exists()
    assert list((tmp_path / "prepared").iterdir()) == []  # no temporary directory left behind


def test_bad_images_are_skipped_and_counted_only_when_params_allow(small_world, tmp_path):
    _, raw = small_world
    shutil.copytree(raw / "aro", tmp_path / "raw" / "aro")
    victim = sorted((tmp_path / "raw/aro/images").glob("*.jpg"))[3]
    victim.write_bytes(b"\xff\xd8 not a jpeg")
    full = prepare("aro_vg_relation", raw, tmp_path / "full", CFG)
    summary = prepare("aro_vg_relation", tmp_path / "raw", tmp_path / "skipped", {**CFG, "skip_bad_images": True})
    assert summary["skipped_records"] >= 1 and summary["skipped_images"] == [str(victim)]
    assert summary["records"] == full["records"] - summary["skipped_records"]
    with PreparedDataset(tmp_path / "skipped") as data:
        kept = list(data.records())
        assert all(r["image"] != f"images/{victim.name}" for r in kept)
        assert {r["id"] for r in kept}.isdisjoint(summary["skipped_ids"])
        for r in kept:
            data.image(r["image"])  # every kept record's image is there and decodes


def test_a_damaged_shard_names_the_image_it_cannot_decode(prepared, tmp_path):
    root = tmp_path / "winoground"
    shutil.copytree(prepared["winoground"][1], root)
    with PreparedDataset(root) as data:
        key = next(data.records())["image_0"]
        shard, offset, size = data._where[key]
    with open(root / shard, "r+b") as f:  # bit rot: the image's bytes overwritten in place
        f.seek(offset)
        f.write(b"\0" * size)
    with PreparedDataset(root) as data, pytest.raises(ValueError, match=rf"image '{key}' \({shard} at byte {offset}\) "
                                                                      r"cannot be decoded.*run prepare again"):
        data.image(key)


def test_failed_prepare_keeps_the_previous_output(prepared, small_world, tmp_path):
    _, raw = small_world
    out = tmp_path / "winoground"
    shutil.copytree(prepared["winoground"][1], out)
    before = tree_digest(out)
    shutil.copytree(raw / "winoground", tmp_path / "raw" / "winoground")
    (tmp_path / "raw/winoground/examples.jsonl").write_text('{"id": 0}\n')
    with pytest.raises(ValueError, match="examples.jsonl: line 1: field 'image_0': missing"):
        prepare("winoground", tmp_path / "raw", out, CFG)
    assert tree_digest(out) == before


def test_missing_raw_source_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="raw source .*sugarcrepe is missing"):
        prepare("sugarcrepe", tmp_path, tmp_path / "out", CFG)
