"""Language identification: a script / stop-word fast path, lingua for the ambiguous rest.

Running lingua on every row costs ~17k rows/s on 2 cores; most instruction rows are plainly
English or Chinese, so only rows the fast path cannot call go to the detector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from sftops.text import script_language

ASCII_WORD_RE = re.compile(r"[a-z]+")
# Detector candidates: the languages instruction corpora mostly mix; anything else reads as one
# of these and is dropped unless allowed.
DETECTOR_LANGUAGES = ("en", "zh", "fr", "de", "es", "it", "pt", "nl", "ja", "ko", "ru")
SAMPLE_CHARS = 400


@cache
def _english_stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@cache
def _detector() -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = [
        Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
        for code in DETECTOR_LANGUAGES
    ]
    return LanguageDetectorBuilder.from_languages(*languages).build()


def fast_language(text: str) -> str | None:
    """The language when the script and stop words make it obvious, else None.

    >>> fast_language("What is the capital of France?"), fast_language("法国的首都是哪里？")
    ('en', 'zh')
    >>> fast_language("Quelle est la capitale de la France ?") is None
    True
    """
    script = script_language(text)
    if script in {"zh", "ja", "ko"}:
        return script
    if script != "en" or not text.isascii():
        return None
    words = ASCII_WORD_RE.findall(text.lower())
    if not words:
        return None
    stop = _english_stopwords()
    hits = sum(map(stop.__contains__, words))
    return "en" if hits >= 2 and hits * 4 >= len(words) else None


def fast_languages(texts: Sequence[str]) -> list[str | None]:
    """``fast_language`` of the start of each text (None: left to the detector)."""
    return [fast_language(t[:SAMPLE_CHARS]) for t in texts]


def detector_languages(texts: Sequence[str]) -> list[str]:
    """The detector's language of the start of each text (``und`` when it finds none)."""
    found = _detector().detect_languages_in_parallel_of([t[:SAMPLE_CHARS] for t in texts])
    return [lang.iso_code_639_1.name.lower() if lang is not None else "und" for lang in found]
