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


@cache
def _stopword_re2() -> str:
    words = sorted(_english_stopwords(), key=lambda w: (-len(w), w))
    return r"\b(?:" + "|".join(words) + r")\b"


def fast_languages(texts: Sequence[str]) -> list[str | None]:
    """``fast_language`` of the start of each text (None: left to the detector).

    ASCII texts (most rows) are decided column-wise: words and stop-word hits are counted with
    vectorised regexes over the lower-cased text whose non-letters became spaces (so ``\b`` is
    exactly a boundary of ``[a-z]+`` words). Other texts go through ``fast_language``.

    >>> fast_languages(["What is the capital of France?", "x1 y2", "法国的首都是哪里？"])
    ['en', None, 'zh']
    """
    if not texts:
        return []
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    head = pc.utf8_slice_codeunits(pa.array(texts, pa.string()), 0, SAMPLE_CHARS)
    ascii_ = pc.string_is_ascii(head).to_numpy(zero_copy_only=False)
    lower = pc.ascii_lower(head)
    words = pc.count_substring_regex(lower, "[a-z]+").to_numpy(zero_copy_only=False)
    spaced = pc.replace_substring_regex(lower, "[^a-z]+", " ")
    hits = pc.count_substring_regex(spaced, _stopword_re2()).to_numpy(zero_copy_only=False)
    # words > 0 is the script check too: an ASCII text with a letter is Latin script.
    english = ascii_ & (words > 0) & (hits >= 2) & (hits * 4 >= words)
    out: list[str | None] = [None] * len(texts)
    for i in np.flatnonzero(english).tolist():
        out[i] = "en"
    for i in np.flatnonzero(~ascii_).tolist():
        out[i] = fast_language(texts[i][:SAMPLE_CHARS])
    return out


def detector_languages(texts: Sequence[str]) -> list[str]:
    """The detector's language of the start of each text (``und`` when it finds none)."""
    found = _detector().detect_languages_in_parallel_of([t[:SAMPLE_CHARS] for t in texts])
    return [lang.iso_code_639_1.name.lower() if lang is not None else "und" for lang in found]
