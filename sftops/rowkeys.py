"""Row identities shared by several stages: content ids, order-free hash fractions, the exact-dup
key and a row's full text. A leaf module, so a stage that only needs these does not depend on
(and rerun after edits to) the stage that defined them first."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_NON_WORD_RE = re.compile(r"[\W_]+")
_encode_json = json.JSONEncoder(ensure_ascii=False).encode  # = json.dumps(x, ensure_ascii=False)


def content_hash(*parts: str) -> str:
    """Stable 16-hex-digit id of a row's content.

    >>> content_hash("a", "b") == content_hash("a", "b") != content_hash("ab", "")
    True
    """
    digest = hashlib.blake2b(_encode_json(parts).encode(), digest_size=8)
    return digest.hexdigest()


def hash_fraction(row_id: str, salt: str = "") -> float:
    """Map a row id to [0, 1) deterministically (independent of row order and RNG state).

    >>> 0 <= hash_fraction("00ff00ff00ff00ff") < 1
    True
    """
    digest = hashlib.blake2b(f"{salt}:{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def dedup_key(text: str) -> str:
    """Hash of the text with case, whitespace and punctuation removed (after NFKC upstream).

    >>> dedup_key("Hello,  World!") == dedup_key("hello world")
    True
    >>> dedup_key("你好，世界") == dedup_key("你好世界")
    True
    """
    core = _NON_WORD_RE.sub("", text.lower())
    return hashlib.blake2b(core.encode(), digest_size=8).hexdigest()


def history_texts(history: str) -> list[str]:
    """The turns of a canonical ``history`` column (a JSON list of [user, assistant] pairs)."""
    return [turn for pair in json.loads(history) for turn in pair]


def join_text(system: str, history: str, instruction: str, input_: str, output: str) -> str:
    """All the text of a row's fields, space-joined, empty parts skipped."""
    turns = " ".join(history_texts(history)) if history != "[]" else ""
    return " ".join(part for part in (system, turns, instruction, input_, output) if part)


def full_text(row: Any) -> str:
    """All the text of a row (system, earlier turns, instruction, input, output)."""
    parts = (row["system"], row["history"], row["instruction"], row["input"], row["output"])
    return join_text(*parts)
