"""Near and exact duplicates of clean rows that stay in their file.

A near duplicate differs from its source in casing, whitespace, punctuation, full-width
characters or one synonym (``variants.near_variant``); an exact duplicate is a verbatim copy,
in the same file or another one.
"""

from __future__ import annotations

import copy

from .reviews import ZH_REVIEW_INSTR
from .sample import CH, CSV, EN, ZH, Pool, Sample, first_user, flat_text, is_long
from .variants import CHAT_SWAPS, EN_SWAPS, ZH_SWAPS, chat_near_variant, near_variant


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text)


def _alpaca_source(pool: Pool, kind: str, lang: str) -> dict:
    """A clean row the ``kind`` variant can visibly change."""
    if kind == "word_changed":
        swaps = EN_SWAPS if lang == "en" else ZH_SWAPS
        lim = 100 if lang == "en" else 50
        return pool.pick(lambda r: is_long(r, lim) and any(a in r["input"] for a, _ in swaps))
    if kind == "extra_punctuation":
        return pool.pick(lambda r: is_long(r, 60 if lang == "en" else 30))
    if kind == "fullwidth" and lang == "en":
        return pool.pick(lambda r: _has_digit(r["instruction"] + r["input"]) or bool(r["input"]))
    if kind == "fullwidth":
        return pool.pick(lambda r: _has_digit(r["instruction"] + r["output"]))
    return pool.pick()


def _near_batch(s: Sample, pool: Pool, fname: str, lang: str, plan) -> None:
    for kind, n in plan:
        for _ in range(n):
            src = _alpaca_source(pool, kind, lang)
            s.add_near(fname, kind, src, near_variant(src, kind, lang))


def _review_lang(r) -> str:
    return "zh" if r["instruction"] == ZH_REVIEW_INSTR else "en"


def _review_source(s: Sample, kind: str) -> dict:
    if kind == "word_changed":
        return s.rv.pick(
            lambda r: (
                _review_lang(r) == "en"
                and is_long(r, 110)
                and any(a in r["input"] for a, _ in EN_SWAPS)
            )
        )
    if kind in ("casing", "fullwidth"):
        return s.rv.pick(lambda r: _review_lang(r) == "en")
    return s.rv.pick()


def _first_user_text(o) -> str:
    u, vk = first_user(o)
    return u[vk]


_CHAT_SOURCE = {
    "casing": lambda o: _first_user_text(o).upper() != _first_user_text(o),
    "word_changed": lambda o: (
        len(flat_text(o)) >= 100 and any(a in _first_user_text(o) for a in CHAT_SWAPS)
    ),
    "whitespace": lambda o: " " in _first_user_text(o),
    "extra_punctuation": lambda o: len(flat_text(o)) >= 100,
}


def plant_near_duplicates(s: Sample) -> None:
    """Near copies of clean rows (casing, whitespace, extra punctuation, full-width characters,
    one synonym); ``clean``'s exact dedup on normalised text or MinHash near dedup removes
    them."""
    en_plan = [
        ("word_changed", 5),
        ("extra_punctuation", 3),
        ("casing", 3),
        ("whitespace", 3),
        ("fullwidth", 2),
    ]
    _near_batch(s, s.en, EN, "en", en_plan)
    zh_plan = [("word_changed", 3), ("extra_punctuation", 2), ("whitespace", 2), ("fullwidth", 3)]
    _near_batch(s, s.zh, ZH, "zh", zh_plan)
    # reviews mix both languages: the source's language decides the variant
    for kind, n in [("word_changed", 3), ("whitespace", 2), ("casing", 2), ("fullwidth", 1)]:
        for _ in range(n):
            src = _review_source(s, kind)
            s.add_near(CSV, kind, src, near_variant(src, kind, _review_lang(src)))
    for kind, n in [
        ("casing", 2),
        ("whitespace", 2),
        ("extra_punctuation", 1),
        ("word_changed", 1),
    ]:
        for _ in range(n):
            src = s.ch.pick(_CHAT_SOURCE[kind])
            s.add_near(CH, kind, src, chat_near_variant(src, kind))


def plant_exact_duplicates(s: Sample) -> None:
    """Verbatim copies of clean rows, in the same file and across files (an English row in the
    Chinese file, a review in the English file ...); ``clean``'s exact dedup removes them."""
    for pool, fname, n in ((s.en, EN, 15), (s.zh, ZH, 10), (s.rv, CSV, 5), (s.ch, CH, 4)):
        for _ in range(n):
            s.add(fname, copy.deepcopy(pool.pick()), "exact_duplicate", sub="same_file")
    for _ in range(2):
        s.add(ZH, copy.deepcopy(s.en.pick()), "exact_duplicate", sub="cross_file")
        s.add(EN, copy.deepcopy(s.zh.pick()), "exact_duplicate", sub="cross_file")
        s.add(EN, copy.deepcopy(s.rv.pick()), "exact_duplicate", sub="cross_file")
