"""Memoised per-text work (tags, translations, embeddings) that a rerun must not redo: each
distinct missing text is computed once, in one batch; JSON Lines persistence for the caches
whose values are JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from sftops.io import atomic_path

V = TypeVar("V")


def text_key(*parts: str) -> str:
    """A short stable key of ``parts`` joined by ``|``.

    >>> text_key("en", "Hello") == text_key("en|Hello")
    True
    """
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


def fill_missing(
    entries: dict[str, V],
    texts: Sequence[str],
    key: Callable[[str], str],
    compute: Callable[[list[str]], Iterable[V]],
) -> tuple[list[str], bool]:
    """Compute, in one call of ``compute``, the value of every distinct text whose key is not in
    ``entries``; return the keys of ``texts`` in order and whether anything was added.

    >>> seen = []
    >>> memo = {}
    >>> keys, added = fill_missing(memo, ["a", "b", "a"], str.upper, lambda t: seen.extend(t) or t)
    >>> keys, added, seen, memo
    (['A', 'B', 'A'], True, ['a', 'b'], {'A': 'a', 'B': 'b'})
    >>> fill_missing(memo, ["b"], str.upper, lambda t: seen.extend(t) or t)[1], seen
    (False, ['a', 'b'])
    """
    keys = [key(t) for t in texts]
    todo = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in entries))
    if todo:
        for text, value in zip(todo, compute(todo), strict=True):
            entries[key(text)] = value
    return keys, bool(todo)


def load_jsonl(path: Path | None, decode: Callable[[Any], V]) -> dict[str, V]:
    """``{key: decode(value)}`` from a file written by :func:`save_jsonl` (empty when absent)."""
    entries: dict[str, V] = {}
    if path and path.exists():
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                entries[record["k"]] = decode(record["v"])
    return entries


def save_jsonl(path: Path, entries: dict[str, Any]) -> None:
    """One ``{"k": key, "v": value}`` line per entry, written atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for key, value in entries.items():
            handle.write(json.dumps({"k": key, "v": value}, ensure_ascii=False) + "\n")


class JsonlMemo(Generic[V]):
    """A text-keyed memo persisted as JSON Lines: what :func:`fill_missing` adds is written by
    :meth:`save` (only when something was added)."""

    def __init__(self, path: str | Path | None, decode: Callable[[Any], V]) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, V] = load_jsonl(self.path, decode)
        self.dirty = False

    def get_many(
        self,
        texts: Sequence[str],
        key: Callable[[str], str],
        compute: Callable[[list[str]], Iterable[V]],
    ) -> list[V]:
        keys, added = fill_missing(self.entries, texts, key, compute)
        self.dirty |= added
        return [self.entries[k] for k in keys]

    def save(self) -> None:
        if self.path and self.dirty:
            save_jsonl(self.path, self.entries)
        self.dirty = False
