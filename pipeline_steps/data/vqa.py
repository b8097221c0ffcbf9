"""VQA v2 (visualqa.org): questions and annotations JSON, ten human answers per question."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .records import json_list, read_json, require_file

ANSWER_TYPES = ("yes/no", "number", "other")


@dataclass(frozen=True)
class VqaQuestion:
    question_id: int
    image_id: int
    image: Path
    question: str
    question_type: str
    answer_type: str
    multiple_choice_answer: str
    answers: list[str]  # the ten human answers


def load(root: str | Path, image_set: str, image_dir: str | Path) -> list[VqaQuestion]:
    """Questions of ``image_set`` (``train2014``/``val2014``) joined with their annotations."""
    root, image_dir = Path(root), Path(image_dir)
    q_path = root / f"v2_OpenEnded_mscoco_{image_set}_questions.json"
    a_path = root / f"v2_mscoco_{image_set}_annotations.json"
    questions = {}
    for r in json_list(q_path, read_json(q_path), "questions"):
        questions[r.get("question_id", int)] = (r.get("question", str), r.get("image_id", int))
    items = []
    for r in json_list(a_path, read_json(a_path), "annotations"):
        qid = r.get("question_id", int)
        if qid not in questions:
            r.fail(f"question {qid} is not in {q_path.name}", "question_id")
        question, image_id = questions[qid]
        if r.get("image_id", int) != image_id:
            r.fail(f"{r.obj['image_id']} differs from the question's image {image_id}", "image_id")
        answers = r.get("answers", list)
        if len(answers) != 10:
            r.fail(f"expected 10 answers, got {len(answers)}", "answers")
        texts = []
        for k, a in enumerate(answers):
            if not isinstance(a, dict) or not isinstance(a.get("answer"), str):
                r.fail(f"entry {k} has no string 'answer'", "answers")
            texts.append(a["answer"])
        image = require_file(r, "image_id", image_dir / f"COCO_{image_set}_{image_id:012d}.jpg")
        items.append(VqaQuestion(qid, image_id, image, question, r.get("question_type", str),
                                 r.choice("answer_type", ANSWER_TYPES),
                                 r.get("multiple_choice_answer", str), texts))
    return items
