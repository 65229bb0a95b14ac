"""EDA-style augmentation (Wei & Zou, 2019) with WordNet synonyms, careful about what it touches.

Only lower-case English words outside protected spans are candidates: code blocks, inline code,
URLs, e-mail addresses, PII placeholders (``[EMAIL]``), numbers and capitalised words (names,
sentence starts) are never changed. Without a POS tagger (NLTK's needs a download), a word's
part of speech is its dominant one in WordNet's sense-tagged counts, and a word whose senses are
split across parts of speech is left alone; synonyms come from its two most frequent senses and
are inflected like the original (plural nouns, verb -s/-ed/-ing).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sftops.config import SynonymParams

PROTECTED_RE = re.compile(
    r"```.*?(?:```|$)|`[^`\n]+`|https?://\S+|www\.\S+|\S+@\S+|\[[A-Z_]+\]", re.DOTALL
)
WORD_RE = re.compile(r"(?<![\w'-])[a-z]{3,}(?![\w'-])")
POS_SHARE = 0.75  # the dominant part of speech must carry this share of the tagged senses
SENSES = 2  # synonyms come from the most frequent senses only (fewer word-sense errors)
MIN_SYNONYM_COUNT = 1  # and must themselves be attested in that sense (no "indite" for "write")
VOWELS = set("aeiou")


@cache
def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def pluralize(noun: str) -> str:
    """Regular English plural.

    >>> [pluralize(w) for w in ["book", "box", "city", "day", "church"]]
    ['books', 'boxes', 'cities', 'days', 'churches']
    """
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def _doubles_final_consonant(verb: str) -> bool:
    return (
        len(verb) <= 4
        and len(verb) >= 3
        and verb[-1] not in VOWELS | {"w", "x", "y"}
        and verb[-2] in VOWELS
        and verb[-3] not in VOWELS
    )


def inflect_verb(verb: str, form: str) -> str:
    """Regular inflection of a base-form verb: ``s``, ``ed`` or ``ing``.

    >>> [inflect_verb("make", f) for f in ("s", "ed", "ing")]
    ['makes', 'maked', 'making']
    >>> [inflect_verb("stop", f) for f in ("s", "ed", "ing")]
    ['stops', 'stopped', 'stopping']
    >>> inflect_verb("carry", "ed")
    'carried'
    """
    if form == "s":
        return pluralize(verb)
    if form == "ing":
        if verb.endswith("e") and not verb.endswith("ee"):
            return verb[:-1] + "ing"
        return verb + verb[-1] + "ing" if _doubles_final_consonant(verb) else verb + "ing"
    if form == "ed":
        if verb.endswith("e"):
            return verb + "d"
        if verb.endswith("y") and verb[-2:-1] not in VOWELS:
            return verb[:-1] + "ied"
        return verb + verb[-1] + "ed" if _doubles_final_consonant(verb) else verb + "ed"
    return verb


def verb_form(word: str, lemma: str) -> str | None:
    """Which regular inflection turns ``lemma`` into ``word`` (None if irregular).

    >>> verb_form("writes", "write"), verb_form("wrote", "write"), verb_form("run", "run")
    ('s', None, 'base')
    """
    if word == lemma:
        return "base"
    for form in ("s", "ed", "ing"):
        if inflect_verb(lemma, form) == word:
            return form
    return None


class SynonymSource:
    """Synonyms of a word in its dominant part of speech, inflected like the word.

    ``wordnet`` is NLTK's reader or a zero-argument function returning it: with a persisted
    ``cache_file`` holding every word of a rerun, WordNet (~3 s to load) is never loaded.
    Sense-tag counts come from ``cntlist.rev`` read once into a dict (NLTK's ``Lemma.count()``
    binary-searches the file on every call, which dominated the cost).
    """

    def __init__(self, wordnet: Any, cache_file: str | Path | None = None) -> None:
        self._wordnet = wordnet
        self._wn: Any = None
        self._counts: dict[str, int] | None = None
        self._irregular: set[str] | None = None
        self.cache_file = Path(cache_file) if cache_file else None
        self._cache: dict[str, tuple[str, ...]] = {}
        self._dirty = False
        if self.cache_file and self.cache_file.exists():
            loaded = json.loads(self.cache_file.read_text(encoding="utf-8"))
            self._cache = {word: tuple(synonyms) for word, synonyms in loaded.items()}

    @property
    def wn(self) -> Any:
        if self._wn is None:
            self._wn = self._wordnet() if callable(self._wordnet) else self._wordnet
        return self._wn

    def _count(self, lemma: Any) -> int:
        if self._counts is None:
            root = Path(getattr(self.wn.root, "path", str(self.wn.root)))
            counts: dict[str, int] = {}
            with (root / "cntlist.rev").open(encoding="utf-8") as handle:
                for line in handle:
                    key, _, count = line.split()
                    counts[key] = int(count)
            self._counts = counts
        return self._counts.get(lemma.key(), 0)

    @property
    def _irregular_verbs(self) -> set[str]:
        if self._irregular is None:
            self._irregular = {
                base for bases in self.wn._exception_map["v"].values() for base in bases
            }
        return self._irregular

    def save(self) -> None:
        """Persist the word -> synonyms cache (atomic write) if it grew."""
        if self.cache_file and self._dirty:
            from sftops.io import write_json

            write_json({w: list(s) for w, s in self._cache.items()}, self.cache_file)
            self._dirty = False

    def dominant_pos(self, word: str) -> tuple[str, str] | None:
        """(part of speech, lemma) carrying most sense-tagged uses of ``word``, if clear."""
        counts: dict[tuple[str, str], int] = {}
        for pos in ("n", "v", "a", "r"):
            lemma = self.wn.morphy(word, pos)
            if lemma is None:
                continue
            tagged = sum(
                self._count(lem)
                for synset in self.wn.synsets(lemma, pos)
                for lem in synset.lemmas()
                if lem.name().lower() == lemma
            )
            counts[(pos, lemma)] = tagged
        if not counts:
            return None
        total = sum(counts.values())
        best = max(counts, key=lambda k: counts[k])
        if len(counts) == 1 or (total and counts[best] / total >= POS_SHARE):
            return best
        return None

    def synonyms(self, word: str) -> tuple[str, ...]:
        if word not in self._cache:
            self._cache[word] = self._lookup(word)
            self._dirty = True
        return self._cache[word]

    def _lookup(self, word: str) -> tuple[str, ...]:
        found = self.dominant_pos(word)
        if found is None:
            return ()
        pos, lemma = found
        form = "base"
        if pos == "n" and word != lemma:
            form = "plural"
        elif pos == "v":
            form = verb_form(word, lemma) or ""
        elif word != lemma:  # comparative adjectives and the like
            form = ""
        if not form:
            return ()
        out: list[str] = []
        for synset in self.wn.synsets(lemma, pos)[:SENSES]:
            for lem in synset.lemmas():
                name = lem.name()
                if (
                    name.lower() == lemma
                    or name != name.lower()
                    or not name.replace("_", "").isalpha()
                    or self._count(lem) < MIN_SYNONYM_COUNT
                ):
                    continue
                inflected = self._inflect(name.replace("_", " "), pos, form)
                if inflected and inflected != word and inflected not in out:
                    out.append(inflected)
        return tuple(out)

    def _inflect(self, phrase: str, pos: str, form: str) -> str | None:
        if form == "base":
            return phrase
        words = phrase.split(" ")
        if form == "plural":
            return " ".join([*words[:-1], pluralize(words[-1])])
        if words[0] in self._irregular_verbs:
            return None  # "write" -> "writed" is worse than no synonym
        return " ".join([inflect_verb(words[0], form), *words[1:]])


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    word: str


def candidate_words(text: str) -> list[Span]:
    """Lower-case, non-stop-word words outside protected spans.

    >>> [s.word for s in candidate_words("Run `make build` then email bob@x.org the quick report")]
    ['email', 'quick', 'report']
    """
    stop = _stopwords()
    protected = [(m.start(), m.end()) for m in PROTECTED_RE.finditer(text)]

    def is_free(start: int, end: int) -> bool:
        return not any(a < end and start < b for a, b in protected)

    return [
        Span(m.start(), m.end(), m.group())
        for m in WORD_RE.finditer(text)
        if m.group() not in stop and is_free(m.start(), m.end())
    ]


def _rebuild(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (start, end, replacement) edits, which must not overlap."""
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def eda_variant(text: str, source: SynonymSource, cfg: SynonymParams, rng: random.Random) -> str:
    """One augmented variant: synonym replacement, then optional insert / swap / delete."""
    spans = candidate_words(text)
    with_synonyms = [s for s in spans if source.synonyms(s.word)]
    edits: list[tuple[int, int, str]] = []
    used: set[int] = set()
    if with_synonyms and cfg.alpha > 0:
        count = max(1, round(cfg.alpha * len(spans)))
        for span in rng.sample(with_synonyms, min(count, len(with_synonyms))):
            edits.append((span.start, span.end, rng.choice(source.synonyms(span.word))))
            used.add(span.start)
    free = [s for s in spans if s.start not in used]
    if cfg.random_swap and len(free) >= 2:
        for _ in range(max(1, round(cfg.random_swap * len(spans)))):
            a, b = rng.sample(free, 2)
            if a.start in used or b.start in used:
                continue
            edits += [(a.start, a.end, b.word), (b.start, b.end, a.word)]
            used |= {a.start, b.start}
    if cfg.random_delete:
        for span in free:
            if span.start not in used and rng.random() < cfg.random_delete:
                end = span.end + 1 if text[span.end : span.end + 1] == " " else span.end
                edits.append((span.start, end, ""))
                used.add(span.start)
    if cfg.random_insert and with_synonyms:
        for _ in range(max(1, round(cfg.random_insert * len(spans)))):
            anchor = rng.choice(free or spans)
            insert = rng.choice(source.synonyms(rng.choice(with_synonyms).word))
            if anchor.start not in used:
                edits.append((anchor.end, anchor.end, " " + insert))
                used.add(anchor.start)
    return _rebuild(text, edits)


def eda_variants(
    text: str, source: SynonymSource, cfg: SynonymParams, rng: random.Random
) -> Iterator[str]:
    """``cfg.n_aug`` variants (duplicates and unchanged copies are the filter's business)."""
    for _ in range(cfg.n_aug):
        yield eda_variant(text, source, cfg, rng)
