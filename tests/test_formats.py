"""Malformed native files fail with the file, the line or index, and the field."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline_steps.data import aro, coco, snli_ve, sugarcrepe, vcr, vqa, winoground
from pipeline_steps.data.records import FormatError


@pytest.fixture
def world(tmp_path, small_world):
    """A private, writable copy of the small world."""
    cfg, root = small_world
    shutil.copytree(root, tmp_path / "raw")
    return tmp_path / "raw"


def edit_jsonl(path, line_no, change):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = change(lines[line_no - 1])
    path.write_text("\n".join(lines) + "\n")


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def expect(message_parts, fn, *args):
    with pytest.raises(FormatError) as info:
        fn(*args)
    for part in message_parts:
        assert part in str(info.value), (part, str(info.value))


def test_winoground_missing_field_and_bad_json_name_the_line(world):
    path = world / "winoground/examples.jsonl"
    edit_jsonl(path, 3, lambda s: json.dumps({k: v for k, v in json.loads(s).items() if k != "caption_1"}))
    expect([str(path), "line 3", "field 'caption_1'", "missing"], winoground.load, world / "winoground")
    edit_jsonl(path, 3, lambda s: s[:-5])
    expect([str(path), "line 3", "invalid JSON"], winoground.load, world / "winoground")


def test_winoground_missing_image_and_bad_tag(world):
    (world / "winoground/images/ex_1_img_1.png").unlink()
    expect(["line 2", "field 'image_1'", "ex_1_img_1.png not found"], winoground.load, world / "winoground")
    path = world / "winoground/examples.jsonl"
    edit_jsonl(path, 1, lambda s: s.replace('"collapsed_tag": "Object"', '"collapsed_tag": "Objects"'))
    expect(["line 1", "field 'collapsed_tag'", "'Objects' is not one of"], winoground.load, world / "winoground")


def test_aro_wrong_types_name_the_index(world):
    path = world / "aro/visual_genome_relation.json"
    edit_json(path, lambda d: d[4].update(bbox_w="wide"))
    expect([str(path), "[4]", "field 'bbox_w'", "expected an integer or a number, got str"],
           aro.load_vg, world / "aro", "relation")
    path = world / "aro/visual_genome_attribution.json"
    edit_json(path, lambda d: d[2].update(attributes=["red"]))
    expect(["[2]", "field 'attributes'", "expected 2 entries, got 1"], aro.load_vg, world / "aro", "attribution")


def test_coco_caption_for_unknown_image(world):
    path = world / "coco/annotations/captions_train2017.json"
    edit_json(path, lambda d: d["annotations"][7].update(image_id=-1))
    expect([str(path), "annotations[7]", "field 'image_id'", "image -1 is not listed"],
           coco.load_captions, path, world / "coco/train2017")


def test_sugarcrepe_missing_negative(world):
    path = world / "sugarcrepe/data/replace_rel.json"
    edit_json(path, lambda d: d["3"].pop("negative_caption"))
    expect([str(path), "['3']", "field 'negative_caption'", "missing"], sugarcrepe.load,
           world / "sugarcrepe", world / "coco/val2017")


def test_vqa_nine_answers_and_orphan_annotation(world):
    path = world / "vqa/v2_mscoco_val2014_annotations.json"
    original = path.read_text()
    edit_json(path, lambda d: d["annotations"][5]["answers"].pop())
    expect([str(path), "annotations[5]", "field 'answers'", "expected 10 answers, got 9"],
           vqa.load, world / "vqa", "val2014", world / "coco/val2014")
    path.write_text(original)
    edit_json(path, lambda d: d["annotations"][6].update(question_id=123))
    expect(["annotations[6]", "field 'question_id'", "question 123 is not in"],
           vqa.load, world / "vqa", "val2014", world / "coco/val2014")


def test_snli_ve_unknown_label_and_legacy_image_key(world):
    path = world / "snli_ve/snli_ve_dev.jsonl"
    # the original release spells the key Flikr30kID and keeps the .jpg: both load the same
    edit_jsonl(path, 1, lambda s: json.dumps({("Flikr30kID" if k == "Flickr30K_ID" else k):
                                              (v + ".jpg" if k == "Flickr30K_ID" else v)
                                              for k, v in json.loads(s).items()}))
    items = snli_ve.load(world / "snli_ve", "dev", world / "flickr30k/flickr30k-images")
    assert items[0].image_id == items[1].image_id
    edit_jsonl(path, 2, lambda s: s.replace('"gold_label": "neutral"', '"gold_label": "-"'))
    expect([str(path), "line 2", "field 'gold_label'", "'-' is not one of"], snli_ve.load,
           world / "snli_ve", "dev", world / "flickr30k/flickr30k-images")


def test_vcr_tag_out_of_range_and_missing_label(world):
    path = world / "vcr/val.jsonl"

    def bad_tag(line):
        row = json.loads(line)
        row["answer_choices"][2] = [[len(row["objects"]) + 3], "is", "here", "."]
        return json.dumps(row)

    edit_jsonl(path, 4, bad_tag)
    expect([str(path), "line 4", "field 'answer_choices'", "does not index the"], vcr.load, world / "vcr", "val")
    edit_jsonl(path, 4, lambda s: json.dumps({k: v for k, v in json.loads(s).items()
                                              if k not in ("answer_label", "answer_choices")}
                                             | {"answer_choices": [["a"]] * 4}))
    expect(["line 4", "field 'answer_label'", "missing"], vcr.load, world / "vcr", "val")
