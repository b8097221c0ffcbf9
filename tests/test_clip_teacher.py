"""The CLIP teacher: its cached features equal the features it computes online."""

from __future__ import annotations

import torch

from pipeline_steps.clip_teacher import ClipFeatureCache, ClipTeacher, cache_clip_features
from pipeline_steps.data.shards import PreparedDataset
from pipeline_steps.models.clip import encode_text
from pipeline_steps.tasks.examples import load_examples


def test_cached_teacher_features_equal_the_online_ones(world, tmp_path):
    params, root = world
    cfg = params["clip_td"]["teacher"]
    for task in ("vqa", "snli_ve", "vcr"):
        summary = cache_clip_features(task, root / "clip", root / task, tmp_path / task, cfg, torch.device("cpu"))
        cache = ClipFeatureCache(tmp_path / task)
        examples = load_examples(task, root / task)[:6]
        teacher = ClipTeacher(root / "clip")
        with PreparedDataset(root / task) as data:
            online = teacher.features(task, examples, [data.image(e.image) for e in examples], cfg["max_words"],
                                      summary["vqa_candidates"])
        cached = cache.batch([e.id for e in examples])
        for name in ("image_tokens", "image_pooled", "words", "text_pooled"):
            assert torch.allclose(getattr(cached, name), getattr(online, name).float(), atol=2e-3), (task, name)
        assert torch.equal(cached.word_mask, online.word_mask)
        assert torch.allclose(cached.choice_logits, online.choice_logits, atol=1e-4)
        assert torch.equal(cached.choice_target, online.choice_target)
        assert cached.word_mask.any(1).all()  # every distilled text has words
    # the teacher's pooled embeddings are CLIP's own
    with PreparedDataset(root / "vcr") as data:
        example = load_examples("vcr", root / "vcr")[0]
        image = data.image(example.image)
    tokens, pooled = teacher.image_features([image])
    expected = teacher.model.encode_image(teacher.preprocess(image)[None], normalize=True)
    assert torch.allclose(pooled, expected, atol=1e-5) and tokens.shape[1] == 64  # 8x8 patches
    text = teacher.text_features([example.distill_text], 24)[2]
    assert torch.allclose(text, teacher.model.encode_text(teacher.tokenizer([example.distill_text]),
                                                          normalize=True), atol=1e-5)
    # the text tower run on the batch's own length (what evaluation uses) is CLIP's encode_text
    ids = teacher.tokenizer(["a cube!", "is the red ball left of the small blue cube ?", ""])
    assert ids.shape[1] == teacher.context
    assert torch.allclose(encode_text(teacher.model, ids, normalize=True),
                          teacher.model.encode_text(ids, normalize=True), atol=1e-6)
