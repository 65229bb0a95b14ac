"""Language identification: a script / stop-word fast path, lingua for the ambiguous rest.

Running lingua on every row costs ~17k rows/s on 2 cores; most instruction rows are plainly
English or Chinese, so only rows the fast path cannot call go to the detector.

Short texts fool the detector: on letter statistics alone it calls "Convert 25°C to
Fahrenheit. 77.0°F" German. So (1) the English fast path accepts text whose only non-ASCII
characters are symbols (°, €, curly quotes), and (2) a short text (under LONG_TEXT_LETTERS
letters) is called French, German, Spanish, Italian, Portuguese or Dutch only when it holds one
of that language's common function words (ones that are not English words); otherwise the
detector's next-ranked language that passes this test is taken (``und`` when none does).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from sftops.text import ascii_letter_words, script_language

ASCII_WORD_RE = re.compile(r"[a-z]+")
# Detector candidates: the languages instruction corpora mostly mix; anything else reads as one
# of these and is dropped unless allowed.
DETECTOR_LANGUAGES = ("en", "zh", "fr", "de", "es", "it", "pt", "nl", "ja", "ko", "ru")
SAMPLE_CHARS = 400
LONG_TEXT_LETTERS = 200  # from this many letters on, the detector's verdict stands alone
LETTER_WORD_RE = re.compile(r"[^\W\d_]+")
# Frequent function words that are not (common) English words, single letters left out: the
# evidence a short text needs before it is called one of these languages.
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "de": frozenset(
        "der das und ist nicht ein eine einen einem eines dem des mit sich auf für ich du wir "
        "sie zu wie auch über oder aber sind wird werden kann haben noch nach bei ob heute "
        "viele sehr".split()
    ),
    "fr": frozenset(
        "le la les des du un une est et que qui dans pour pas sur avec ce cette sont je tu "
        "nous vous il elle au aux ne se en mais où très".split()
    ),
    "es": frozenset(
        "el la los las de del que en es un una por para con se su al lo como más pero está "
        "qué cuál muy hace".split()
    ),
    "it": frozenset(
        "il lo la le gli di da che è non una un del della con sono questo ma anche più nel "
        "qual quale".split()
    ),
    "pt": frozenset(
        "os de da dos das que em uma para não por se na mais é são como mas muito".split()
    ),
    "nl": frozenset(
        "de het een en dat niet op te zijn voor ik je wij ze er maar om bij ook als aan".split()
    ),
}


@cache
def _english_stopwords() -> frozenset[str]:
    """scikit-learn's English stop words, read from their module alone: importing
    ``sklearn.feature_extraction`` loads scipy.stats and more (~1.5 s in every worker)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    assert spec is not None and spec.submodule_search_locations is not None
    path = Path(spec.submodule_search_locations[0]) / "feature_extraction" / "_stop_words.py"
    words = importlib.util.spec_from_file_location("_sklearn_stop_words", path)
    assert words is not None and words.loader is not None
    module = importlib.util.module_from_spec(words)
    words.loader.exec_module(module)
    return frozenset(module.ENGLISH_STOP_WORDS)


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
    >>> fast_language("Convert the temperature from Celsius to Fahrenheit. 25°C: 77.0°F")
    'en'
    """
    script = script_language(text)
    if script in {"zh", "ja", "ko"}:
        return script
    if script != "en" or (not text.isascii() and _has_non_ascii_letter(text)):
        return None
    words = ASCII_WORD_RE.findall(text.lower())
    if not words:
        return None
    stop = _english_stopwords()
    hits = sum(map(stop.__contains__, words))
    return "en" if hits >= 2 and hits * 4 >= len(words) else None


@cache
def _english_stopwords_bytes() -> frozenset[bytes]:
    return frozenset(w.encode() for w in _english_stopwords())


def fast_languages(texts: Sequence[str]) -> list[str | None]:
    """``fast_language`` of the start of each text (None: left to the detector).

    ASCII texts (most rows) skip the regexes: their words are cut with a byte table.

    >>> fast_languages(["What is the capital of France?", "x1 y2", "法国的首都是哪里？"])
    ['en', None, 'zh']
    """
    stop = _english_stopwords_bytes()
    out: list[str | None] = []
    for text in texts:
        head = text[:SAMPLE_CHARS]
        if not head.isascii():
            out.append(fast_language(head))
            continue
        # An ASCII text with a letter is Latin script: words > 0 is the script check too.
        words = ascii_letter_words(head)
        hits = sum(map(stop.__contains__, words))
        out.append("en" if words and hits >= 2 and hits * 4 >= len(words) else None)
    return out


def _has_non_ascii_letter(text: str) -> bool:
    return any(
        c > "\x7f" and (c.isalpha() or unicodedata.category(c).startswith("M")) for c in text
    )


def _evidenced(lang: str, words: set[str], letters: int) -> bool:
    needed = FUNCTION_WORDS.get(lang)
    return needed is None or letters >= LONG_TEXT_LETTERS or not needed.isdisjoint(words)


def choose_language(text: str, ranked: Sequence[tuple[str, float]]) -> str:
    """The first of the detector's ranked (language, confidence) that the text backs up (see
    the module notes); ``und`` when none does.

    >>> choose_language("Convert 25°C to Fahrenheit.", [("de", 0.7), ("pt", 0.1), ("en", 0.1)])
    'en'
    >>> choose_language("Wie viele Tage hat eine Woche?", [("de", 0.8), ("en", 0.1)])
    'de'
    """
    tokens = LETTER_WORD_RE.findall(text.lower())
    words, letters = set(tokens), sum(map(len, tokens))
    for lang, confidence in ranked:
        if confidence <= 0:
            break
        if _evidenced(lang, words, letters):
            return lang
    return "und"


def detector_languages(texts: Sequence[str]) -> list[str]:
    """The detector's language of the start of each text, backed up by function words for
    short texts (``und`` when it finds none)."""
    samples = [t[:SAMPLE_CHARS] for t in texts]
    found = _detector().compute_language_confidence_values_in_parallel(samples)
    return [
        choose_language(
            sample, [(c.language.iso_code_639_1.name.lower(), c.value) for c in confidences]
        )
        for sample, confidences in zip(samples, found, strict=True)
    ]
