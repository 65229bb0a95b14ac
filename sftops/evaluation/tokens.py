"""How the metrics see text: language codes, answer normalisation and tokens, Chinese by character.

Chinese has no spaces between words, so for Chinese rows (any code whose base is ``zh``) the
word-level metrics work on characters, keeping runs of ASCII letters/digits as words.
"""

from __future__ import annotations

import re
import string
import unicodedata

from sftops.text import HAN, KANA

# Kana too: Japanese has no spaces either, so a kana character is one token as a Han one is.
# (These are the ranges the metrics were defined with; Han alone would split Japanese answers
# into different tokens and change their scores.)
_CJK = HAN + KANA
# One CJK character, or a run of other letters/digits (ASCII words, accented words, numbers).
_MIXED_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_WS_AROUND_CJK_RE = re.compile(f"(?<=[{_CJK}])\\s+|\\s+(?=[{_CJK}])")
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
# Symbols that full-width Chinese text uses besides the Unicode "P*" punctuation categories.
_EXTRA_PUNCT = frozenset("～￥｀＾｜＋＝＜＞")
_ASCII_PUNCT = frozenset(string.punctuation)


def is_chinese(lang: str) -> bool:
    """True for Chinese language codes (base ``zh``, any region/script suffix).

    >>> is_chinese("zh"), is_chinese("zh-Hant"), is_chinese("ZH_cn"), is_chinese("en")
    (True, True, True, False)
    """
    return re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0] == "zh"


def char_tokenize(text: str) -> list[str]:
    """Lower-cased tokens: each CJK character alone, runs of other letters/digits as words;
    punctuation and whitespace are dropped.

    >>> char_tokenize("法国的首都是Paris 2024年！")
    ['法', '国', '的', '首', '都', '是', 'paris', '2024', '年']
    """
    return _MIXED_TOKEN_RE.findall(text.lower())


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or ch in _EXTRA_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str, lang: str = "en") -> str:
    """SQuAD answer normalisation: lower-case, drop punctuation (ASCII and Unicode, so Chinese
    ``，。！？“”《》`` too), drop the articles a/an/the (English only: any non-Chinese ``lang``),
    and collapse whitespace. For Chinese, whitespace next to a CJK character is removed.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    >>> normalize_answer(" 巴 黎， 法国。", "zh"), normalize_answer("iPhone 15 手机", "zh")
    ('巴黎法国', 'iphone 15手机')
    """
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    if is_chinese(lang):
        return _WS_AROUND_CJK_RE.sub("", " ".join(text.split()))
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def answer_tokens(text: str, lang: str) -> list[str]:
    normalized = normalize_answer(text, lang)
    return char_tokenize(normalized) if is_chinese(lang) else normalized.split()
