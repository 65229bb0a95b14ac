"""Small pure text utilities shared by stages (script detection, shingles)."""

from __future__ import annotations

import re
from itertools import pairwise

#: What "a Chinese character" means everywhere in the package (a regex character-class body):
#: CJK Unified Ideographs, extension A and the compatibility ideographs.
HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: Hiragana and katakana.
KANA = r"\u3040-\u30ff"
HAN_RE = re.compile(f"[{HAN}]")
KANA_RE = re.compile(f"[{KANA}]")
HANGUL_RE = re.compile(r"[\uac00-\ud7af]")
LATIN_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
WORD_RE = re.compile(r"\w+")


def has_cjk(text: str) -> bool:
    """True when the text contains Chinese characters.

    >>> has_cjk("法国的首都"), has_cjk("Paris")
    (True, False)
    """
    return HAN_RE.search(text) is not None


def script_language(text: str) -> str:
    """A cheap guess of the language from the script: ``zh``, ``ja``, ``ko``, ``en`` or ``und``.

    Latin script is reported as ``en``; the clean stage tells English from other Latin-script
    languages with a real language detector.

    >>> script_language("法国的首都是巴黎。"), script_language("The capital is Paris.")
    ('zh', 'en')
    >>> script_language("これは日本語です"), script_language("12345")
    ('ja', 'und')
    """
    if text.isascii():  # no Han, kana or Hangul: the common case, decided without counting
        return "en" if LATIN_RE.search(text) else "und"
    han = len(HAN_RE.findall(text))
    kana = len(KANA_RE.findall(text))
    hangul = len(HANGUL_RE.findall(text))
    latin = len(LATIN_RE.findall(text))
    if kana and kana + han >= latin:
        return "ja"
    if hangul and hangul >= latin:
        return "ko"
    # One Han character counts for about as much text as a short Latin word.
    if han and han * 3 >= latin:
        return "zh"
    if latin:
        return "en"
    return "und"


def shingles(text: str, word_n: int = 2, char_n: int = 2) -> set[str]:
    """Shingles for near-duplicate detection: character n-grams when the text has Chinese
    characters (no spaces to split on), lower-cased word n-grams otherwise.

    >>> sorted(shingles("The cat sat", word_n=2))
    ['cat sat', 'the cat']
    >>> sorted(shingles("猫坐着", char_n=2))
    ['坐着', '猫坐']
    >>> shingles("Hi", word_n=3)
    {'hi'}
    """
    if has_cjk(text):
        chars = "".join(WORD_RE.findall(text.lower()))
        if len(chars) <= char_n:
            return {chars} if chars else set()
        return {chars[i : i + char_n] for i in range(len(chars) - char_n + 1)}
    return word_shingles(WORD_RE.findall(text.lower()), word_n)


def word_shingles(words: list[str], n: int = 2) -> set[str]:
    """Word n-grams joined with spaces (the whole text when it has at most ``n`` words).

    >>> sorted(word_shingles(["the", "cat", "sat"], 2)), word_shingles([], 2)
    (['cat sat', 'the cat'], set())
    """
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    if n == 2:  # the default, spelled out: faster than the general zip of n slices
        return set(map(" ".join, pairwise(words)))
    return set(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))


def _byte_table(keep: str, lower: bool = True) -> bytes:
    """A bytes.translate table: upper-case ASCII letters lower-cased, bytes of ``keep`` kept,
    every other byte a space."""
    table = bytearray(b" " * 256)
    for c in keep:
        table[ord(c)] = ord(c)
    if lower:
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            table[ord(c)] = ord(c.lower())
    return bytes(table)


_LOWER = "abcdefghijklmnopqrstuvwxyz"
_WORD_TABLE = _byte_table(_LOWER + "0123456789_")
_LETTER_TABLE = _byte_table(_LOWER)
_NOT_ALNUM = bytes(b for b in range(256) if not chr(b).isascii() or not chr(b).isalnum())


def ascii_words(text: str) -> list[str]:
    """``re.findall(r"\\w+", text.lower())`` for an ASCII text, without the regex.

    >>> ascii_words("Hello, World_2 x-y!")
    ['hello', 'world_2', 'x', 'y']
    """
    return text.encode("ascii").translate(_WORD_TABLE).decode("ascii").split()


def ascii_letter_words(text: str) -> list[bytes]:
    """``re.findall("[a-z]+", text.lower())`` for an ASCII text, as bytes.

    >>> ascii_letter_words("It's 3 o'clock")
    [b'it', b's', b'o', b'clock']
    """
    return text.encode("ascii").translate(_LETTER_TABLE).split()


def ascii_alnum_core(text: str) -> bytes:
    """The letters (lower-cased) and digits of an ASCII text: ``re.sub(r"[\\W_]+", "",
    text.lower())`` as bytes.

    >>> ascii_alnum_core("Hello,  World_2!")
    b'helloworld2'
    """
    return text.encode("ascii").translate(_WORD_TABLE, _NOT_ALNUM)
