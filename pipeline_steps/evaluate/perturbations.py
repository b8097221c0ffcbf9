"""ARO's word-order perturbations for COCO-Order and Flickr30k-Order (Yuksekgonul et al., 2023).

Each caption becomes one test case with five options: the original (after ``pre_caption``) and
four perturbations: nouns and adjectives shuffled among themselves, every other word shuffled,
words shuffled within each trigram, and the trigrams shuffled.  The original code tags words with
spaCy; here the tagger is spaCy's ``en_core_web_sm`` when it is installed (install it for paper
mode), otherwise a small fixed lexicon of colour, size and shape words (recorded in the metrics as
``tagger``). The lexicon is written out here rather than taken from the synthetic world's generator,
so that a change to the generator cannot change paper-mode perturbations; a test checks that it
covers the synthetic world's words.
"""

from __future__ import annotations

import re

import numpy as np

LEXICON_NOUNS = {"square", "circle", "triangle", "star", "cross",
                 "squares", "circles", "triangles", "stars", "crosses",
                 "picture", "photo", "thing", "object"}
LEXICON_ADJECTIVES = {"red", "green", "blue", "yellow", "purple", "orange", "small", "large"}


def pre_caption(caption: str, max_words: int = 30) -> str:
    """ARO/BLIP caption normalisation: lower case, punctuation to spaces, at most 30 words."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


class Tagger:
    """Marks each word as noun ('N'), adjective ('J') or other ('O')."""

    def __init__(self):
        try:
            import spacy

            self._nlp = spacy.load("en_core_web_sm")
            self.name = "spacy:en_core_web_sm"
        except Exception:  # noqa: BLE001 - spaCy or its model is optional
            self._nlp = None
            self.name = "lexicon"

    def tags(self, words: list[str]) -> list[str]:
        if self._nlp is not None:
            doc = self._nlp(" ".join(words))
            if len(doc) == len(words):
                return ["N" if t.tag_.startswith("NN") else "J" if t.tag_.startswith("JJ") else "O"
                        for t in doc]
        return ["N" if w in LEXICON_NOUNS else "J" if w in LEXICON_ADJECTIVES else "O" for w in words]


def _shuffle_positions(words: list[str], positions: list[int], rng: np.random.Generator) -> list[str]:
    out = list(words)
    for src, dst in zip(positions, rng.permutation(positions)):
        out[dst] = words[src]
    return out


def perturbations(caption: str, tagger: Tagger, rng: np.random.Generator) -> list[str]:
    """[shuffle_nouns_and_adj, shuffle_allbut_nouns_and_adj, shuffle_within_trigrams, shuffle_trigrams]."""
    words = caption.split()
    tags = tagger.tags(words)
    nouns = [i for i, t in enumerate(tags) if t == "N"]
    adjs = [i for i, t in enumerate(tags) if t == "J"]
    others = [i for i, t in enumerate(tags) if t == "O"]
    nouns_adj = _shuffle_positions(_shuffle_positions(words, nouns, rng), adjs, rng)
    all_but = _shuffle_positions(words, others, rng)
    trigrams = [words[i:i + 3] for i in range(0, len(words), 3)]
    within = [w for tri in trigrams for w in (list(rng.permutation(tri)) if len(tri) > 1 else tri)]
    order = rng.permutation(len(trigrams))
    across = [w for j in order for w in trigrams[j]]
    return [" ".join(x) for x in (nouns_adj, all_but, within, across)]
