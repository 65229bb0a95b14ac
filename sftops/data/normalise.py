"""Per-text cleaning, pure functions of one text: normalisation (NFKC with Chinese punctuation
kept, control / zero-width characters, HTML outside code blocks, whitespace), traditional ->
simplified Chinese, and the measures the clean stage filters on (letters-and-digits ratio,
n-gram repetition, the exact-dedup key of ASCII text).
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sftops.text import HAN, has_cjk

CODE_FENCE_RE = re.compile(r"(```.*?(?:```|$))", re.DOTALL)
# Only real HTML tag names, so `List<String>` or `a <b> c` in prose about code survive.
_TAGS = (
    "a|abbr|b|blockquote|body|br|code|dd|del|div|dl|dt|em|font|h[1-6]|head|hr|html|i|img|ins|"
    "kbd|li|mark|meta|ol|p|pre|s|small|span|strong|sub|sup|table|tbody|td|tfoot|th|thead|title|"
    "tr|tt|u|ul"
)
# Attributes must have values (`<b and c>` in prose is not a tag).
_ATTRS = r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>]+))*"""
HTML_TAG_RE = re.compile(rf"</?(?:{_TAGS}){_ATTRS}\s*/?>", re.IGNORECASE)
HTML_BLOCK_TAG_RE = re.compile(r"<(?:br|/p|/div|/li|/tr|/h[1-6]|hr)\b[^<>]*>", re.IGNORECASE)
HTML_DROP_RE = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
HTML_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[A-Za-z]{2,8});")
# Control and format characters (category Cc/Cf) except tab and newline.
CONTROL_RE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]"
)
# Runs of inline spaces, except a lone " " (already what a run becomes).
INLINE_SPACE_RE = re.compile(r" [ \t\u00a0\u3000]+|[\t\u00a0\u3000][ \t\u00a0\u3000]*")
MANY_NEWLINES_RE = re.compile(r"\n{3,}")
# A Chinese character alone (no spaces between words), else a run of word characters.
WORD_OR_CJK_RE = re.compile(f"[{HAN}]|\\w+")
SPACE_RE = re.compile(r"\s+")
NOT_ALNUM_RE = re.compile(r"[\W_]+")  # [^\W_] is exactly str.isalnum, \s str.isspace


def _outside_code(text: str, edit: Any) -> str:
    """Apply ``edit`` to the parts of ``text`` that are not inside ``` code fences."""
    if "```" not in text:
        return str(edit(text))
    parts = CODE_FENCE_RE.split(text)
    return "".join(part if part.startswith("```") else edit(part) for part in parts)


def strip_html(text: str) -> str:
    """Remove HTML tags and decode entities outside code blocks.

    >>> strip_html("<p>Hello&nbsp;<b>world</b></p>")
    'Hello\\xa0world\\n'
    >>> strip_html("Use List<String> when a < b")
    'Use List<String> when a < b'
    >>> strip_html("```html\\n<p>x</p>\\n```")
    '```html\\n<p>x</p>\\n```'
    """

    def edit(part: str) -> str:
        if "<" in part:
            part = HTML_DROP_RE.sub("", part)
            part = HTML_BLOCK_TAG_RE.sub("\n", part)
            part = HTML_TAG_RE.sub("", part)
        if "&" in part and HTML_ENTITY_RE.search(part):
            part = html.unescape(part)
        return part

    return _outside_code(text, edit)


def _tidy_whitespace(part: str) -> str:
    part = INLINE_SPACE_RE.sub(" ", part)
    if "\n" not in part:
        return part.strip()
    part = "\n".join(line.strip() for line in part.split("\n"))
    return MANY_NEWLINES_RE.sub("\n\n", part) if "\n\n\n" in part else part


# Full-width punctuation is the correct form in Chinese text; NFKC would turn it into ASCII.
CJK_PUNCTUATION = "，！？：；（）"
_NOT_CJK_PUNCTUATION_RE = re.compile(f"[^{CJK_PUNCTUATION}]+")


def nfkc(text: str) -> str:
    """NFKC, except that Chinese text keeps its full-width punctuation.

    >>> nfkc("ＡＢＣ１２３，ｘ"), nfkc("你好，ＡＢＣ！")
    ('ABC123,x', '你好，ABC！')
    """
    if not has_cjk(text):
        return unicodedata.normalize("NFKC", text)
    return _NOT_CJK_PUNCTUATION_RE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def normalise_text(text: str, unicode_nfkc: bool = True, html_strip: bool = True) -> str:
    """NFKC (full-width -> half-width), drop control / zero-width characters, strip HTML, tidy
    whitespace outside code blocks.

    >>> normalise_text("ＡＢＣ１２３\\u200b  <b>ok</b>\\x07\\r\\n")
    'ABC123 ok'
    >>> normalise_text("```py\\n    x = 1\\n```")
    '```py\\n    x = 1\\n```'
    """
    if not text.isascii() and unicode_nfkc:
        text = nfkc(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_RE.sub("", text)
    if html_strip:
        text = strip_html(text)
    return _outside_code(text, _tidy_whitespace).strip()


# A text showing none of these (RE2 syntax) can only change by ``strip()`` in normalise_text:
# not NFKC-able (printable ASCII), no control character, newline or tab, no markup or entity
# character, no code fence, no run of spaces.
_NEEDS_NORMALISING_RE2 = r"[^\x20-\x7e]|[<&`]|  "


def normalise_texts(
    texts: Sequence[str], unicode_nfkc: bool = True, html_strip: bool = True
) -> list[str]:
    """``normalise_text`` of each text; one vectorised regex pass picks the texts that need the
    per-text work, the others are only stripped.

    >>> normalise_texts([" plain text ", "<b>bold</b>  x"])
    ['plain text', 'bold x']
    """
    if not texts:
        return []
    needs = pc.match_substring_regex(pa.array(texts, pa.string()), _NEEDS_NORMALISING_RE2)
    return [
        normalise_text(t, unicode_nfkc, html_strip) if hard else t.strip()
        for t, hard in zip(texts, needs.to_numpy(zero_copy_only=False).tolist(), strict=True)
    ]


def _byte_class(chars: bytes) -> np.ndarray:
    """A 256-entry lookup table: 1 for the bytes in ``chars``, else 0."""
    table = np.zeros(256, dtype=np.int32)
    table[np.frombuffer(chars, dtype=np.uint8)] = 1
    return table


_ASCII_ALNUM = _byte_class(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ASCII_SPACE = _byte_class(b" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")  # what \s matches in ASCII


def _per_text_counts(column: pa.StringArray, table: np.ndarray) -> np.ndarray:
    """Per text of ``column``, how many of its bytes ``table`` marks: one table lookup and
    one cumulative sum over the column's data buffer (RE2's count of a one-character class
    cost ~15x more)."""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    data = column.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    totals = np.zeros(raw.size + 1, dtype=np.int32)  # int32 offsets: the sums fit
    np.cumsum(table[raw], out=totals[1:])
    return totals[offsets[1:]] - totals[offsets[:-1]]


def alnum_ratios(texts: Sequence[str]) -> np.ndarray:
    """``alnum_ratio`` of each text; ASCII texts are counted column-wise (letters and digits
    over non-space characters, by a byte table), the others one by one.

    >>> alnum_ratios(["ab!!", "你好！", "", " \t"]).tolist()
    [0.5, 0.6666666666666666, 1.0, 1.0]
    """
    if not texts:
        return np.empty(0, dtype=np.float64)
    column = pa.array(texts, pa.string())
    alnum = _per_text_counts(column, _ASCII_ALNUM)
    chars = pc.binary_length(column).to_numpy(zero_copy_only=False) - _per_text_counts(
        column, _ASCII_SPACE
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(chars > 0, alnum / np.maximum(chars, 1), 1.0)
    ascii_ = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~ascii_).tolist():
        out[i] = alnum_ratio(texts[i])
    return out


def repetition_ratio(text: str, n: int = 3) -> float:
    """Fraction of word (or CJK character) n-grams that repeat an earlier one.

    >>> repetition_ratio("the the the the the the the the")
    0.8333333333333334
    >>> repetition_ratio("a quick brown fox jumps over the lazy dog")
    0.0
    """
    return _repetition(WORD_OR_CJK_RE.findall(text.lower()), n)


def _repetition(tokens: list[str], n: int = 3) -> float:
    if len(tokens) < n + 3:  # too short to call repetitive
        return 0.0
    grams = zip(*(tokens[i:] for i in range(n)), strict=False)
    return 1 - len(set(grams)) / (len(tokens) - n + 1)  # len(tokens) - n + 1 n-grams


def _key_of_core(core: bytes) -> str:
    """``rowkeys.dedup_key`` of a text already reduced to its lower-cased letters and digits.

    >>> from sftops.rowkeys import dedup_key
    >>> from sftops.text import ascii_alnum_core
    >>> _key_of_core(ascii_alnum_core("Hello, World_2!")) == dedup_key("Hello, World_2!")
    True
    """
    return hashlib.blake2b(core, digest_size=8).hexdigest()


def _may_repeat(n_tokens: int, n_distinct_bigrams: int, limit: float) -> bool:
    """False when the trigram repetition of a text cannot exceed ``limit``: a trigram that
    repeats an earlier one starts with a bigram that does, so the repeated trigrams are at most
    the repeated bigrams (the margin keeps float rounding on the safe side).

    >>> _may_repeat(10, 9, 0.5), _may_repeat(10, 3, 0.5)
    (False, True)
    """
    if n_tokens < 6:  # _repetition calls a text this short not repetitive
        return False
    repeated_bigrams = (n_tokens - 1) - n_distinct_bigrams
    return repeated_bigrams >= (limit - 1e-9) * (n_tokens - 2)


def alnum_ratio(text: str) -> float:
    """Fraction of non-space characters that are letters or digits (CJK included).

    >>> alnum_ratio("ab!!"), alnum_ratio("你好！"), alnum_ratio("")
    (0.5, 0.6666666666666666, 1.0)
    """
    chars = SPACE_RE.sub("", text)
    if not chars:
        return 1.0
    return len(NOT_ALNUM_RE.sub("", chars)) / len(chars)


@cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese (OpenCC).

    >>> to_simplified("這是一個測試")
    '这是一个测试'
    """
    return str(_t2s().convert(text))
