"""The ViLT student: word pooling, image token order, a deterministic vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import smoke_params

from pipeline_steps.models.student import load_student, train_vocabulary


def test_word_pooling_averages_exactly_the_pieces_of_each_word(world):
    _, root = world
    student = load_student(root / "student")
    texts = ["what colour is the zigzagged thing", "a", "two stars left of a purplish square " * 6]
    tokens, pool, mask = student.tokenize(texts, 6)
    ids = tokens["input_ids"]
    assert ids.shape[1] == student.max_text_len  # the third text is truncated
    for b, text in enumerate(texts):
        for w in range(6):
            if w >= len(text.split()):
                assert not mask[b, w] and not pool[b, w].any()
                continue
            # word w's pieces are the tokens of the word tokenised alone, each weighted 1 / their number
            pieces = student.tokenizer.convert_tokens_to_ids(student.tokenizer.tokenize(text.split()[w]))
            where = pool[b, w].nonzero().flatten()
            assert mask[b, w] and ids[b, where].tolist() == pieces
            assert pool[b, w, where].tolist() == pytest.approx([1 / len(pieces)] * len(pieces))
            assert where.tolist() == list(range(where[0], where[0] + len(pieces)))  # contiguous


def test_student_image_tokens_come_back_in_raster_order(world):
    """With no encoder layers a token depends on its own patch only: changing patch (row 2, column 5)
    must change image token 2 * grid + 5 and no other, in spite of ViLT's random patch order."""
    from PIL import Image
    from transformers import BertTokenizer, ViltModel

    from pipeline_steps.models.student import Student, tiny_config

    _, root = world
    spec = {**smoke_params()["models"]["student"]["tiny"], "layers": 0}
    tokenizer = BertTokenizer.from_pretrained(root / "student")
    torch.manual_seed(0)
    student = Student(ViltModel(tiny_config(spec, len(tokenizer))), tokenizer).eval()
    grid, patch = student.grid, spec["patch_size"]
    base = np.full((spec["image_size"], spec["image_size"], 3), 128, dtype=np.uint8)
    changed = base.copy()
    changed[2 * patch:3 * patch, 5 * patch:6 * patch] = 255
    state = torch.random.get_rng_state()
    with torch.no_grad():
        a = student.encode([Image.fromarray(base)], ["a red square"]).image[0]
        b = student.encode([Image.fromarray(changed)], ["a red square"]).image[0]
    assert torch.equal(torch.random.get_rng_state(), state)  # ViLT's sampling left the generator alone
    moved = (a - b).abs().sum(-1) > 1e-6
    assert moved.nonzero().flatten().tolist() == [2 * grid + 5]


def test_student_vocabulary_is_the_same_on_every_run(tmp_path):
    texts = ["A red circle and a blue square.", "Is the square blue?", "two stars", "a red star"] * 3
    a = train_vocabulary(texts, 50, tmp_path / "a").read_text()
    b = train_vocabulary(list(reversed(texts)), 50, tmp_path / "b").read_text()
    assert a == b  # no dependence on order (or on hash seeds: ties are broken alphabetically)
    vocab = a.split()
    chars = sorted(set("".join(texts).lower()) - {" "})
    assert vocab[:5 + 2 * len(chars)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    # then whole words, most frequent first, ties alphabetical, cut at the size
    words = ["blue", "red", "square", "and", "circle", "is", "star", "stars", "the", "two"]
    assert vocab[5 + 2 * len(chars):] == words[:50 - 5 - 2 * len(chars)]


def test_mlm_masks_only_the_words_the_image_decides():
    """MLM never masks the unmasked words (function words), special tokens, padding or the captions of
    ITM's mismatched pairs, and masks the other words at the configured rate."""
    from pipeline_steps.train.pretrain import mlm_masks

    generator = torch.Generator().manual_seed(0)
    # ids: 2 [CLS], 3 [SEP], 0 [PAD]; 10 and 11 function words; 20..29 content words
    ids = torch.tensor([[2, 10, 20, 21, 11, 22, 3, 0]] * 4000)
    attention = (ids != 0).long()
    rows = torch.arange(4000) % 2 == 0
    chosen = mlm_masks(ids, attention, rows, torch.tensor([0, 2, 3, 10, 11]), 0.3, generator)
    assert not chosen[~rows].any()
    assert not chosen[:, [0, 1, 4, 6, 7]].any()
    rate = chosen[rows][:, [2, 3, 5]].float().mean().item()
    assert rate == pytest.approx(0.3, abs=0.02)
