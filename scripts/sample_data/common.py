"""Shared state of one generation run: the random stream, table loading and row uniqueness.

All randomness comes from the single ``rng`` below, so the order in which the generators run
fixes the output: ``main()`` must call them in the same order to reproduce the files byte for
byte.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

SEED = 1234
TABLES_DIR = Path(__file__).resolve().parent / "tables"

rng = random.Random(SEED)


def load_tables(name: str) -> dict:
    """Read ``tables/<name>.json``; a list of lists becomes a list of tuples (rows of a table)."""
    with open(TABLES_DIR / f"{name}.json", encoding="utf-8") as f:
        data = json.load(f)
    return {
        k: [tuple(x) for x in v] if isinstance(v, list) and v and isinstance(v[0], list) else v
        for k, v in data.items()
    }


_SLOT = re.compile(r"\{([^{}]*)\}")


def fill(template: str, slots: Mapping[str, Sequence | Callable[[], str]]) -> str:
    """Fill a table template's ``{...}`` slots left to right, each drawing from ``rng``.

    ``{a|b|c}`` picks one of the literals, ``{int:2:5}`` an integer in [2, 5], ``{NAME}`` an
    item of ``slots[NAME]`` (or calls it when it is a function). Left to right is the order the
    f-strings these templates came from drew their random numbers in.

    >>> rng.seed(0)
    >>> fill("{A} {x|y} {int:1:1}", {"A": ["a"]})
    'a y 1'
    """

    def one(m: re.Match) -> str:
        s = m.group(1)
        if "|" in s:
            return rng.choice(s.split("|"))
        if s.startswith("int:"):
            _, lo, hi = s.split(":")
            return str(rng.randint(int(lo), int(hi)))
        v = slots[s]
        return v() if callable(v) else str(rng.choice(v))

    return _SLOT.sub(one, template)


def cap_first(s: str) -> str:
    """Upper-case the first character only.

    >>> cap_first("a ripe banana")
    'A ripe banana'
    """
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------------------
# Global uniqueness of clean rows (so the only duplicates are the planted ones)
# ---------------------------------------------------------------------------

_SEEN: set[str] = set()


def norm(s: str) -> str:
    """NFKC, lower case, whitespace folded: the key under which two texts count as equal.

    >>> norm("  Ｈｅｌｌｏ\\tWorld ")
    'hello world'
    """
    s = unicodedata.normalize("NFKC", s)
    return " ".join(s.lower().split())


def pair_key(prompt: str, answer: str) -> str:
    return norm(prompt) + "||" + norm(answer)


def alpaca_key(row: dict) -> str:
    return pair_key(row["instruction"] + " " + row["input"], row["output"])


def chat_key(turns: list[tuple[str, str]]) -> str:
    return " ## ".join(pair_key(u, a) for u, a in turns)


def is_seen(key: str) -> bool:
    return key in _SEEN


def claim(key: str) -> bool:
    """Reserve ``key``; False when a row with the same key was produced before."""
    if key in _SEEN:
        return False
    _SEEN.add(key)
    return True


def arow(instruction, inp, output, task=None, label=None) -> OrderedDict:
    """An Alpaca row; ``task`` and ``label`` keys only when given (key order is the file's)."""
    row = OrderedDict()
    row["instruction"] = instruction
    row["input"] = inp
    row["output"] = output
    if task is not None:
        row["task"] = task
    if label is not None:
        row["label"] = label
    return row


def template_row(template: Mapping[str, str], label=None, **values) -> OrderedDict:
    """An Alpaca row from a table template (``instruction``/``input``/``output`` with
    ``{name}`` placeholders filled from ``values``, and its ``task``).

    >>> dict(template_row({"instruction": "Is {x} odd?", "output": "No.", "task": "qa"}, x=2))
    {'instruction': 'Is 2 odd?', 'input': '', 'output': 'No.', 'task': 'qa'}
    """

    def field(k: str) -> str:
        return template.get(k, "").format(**values)

    return arow(field("instruction"), field("input"), field("output"), template["task"], label)


# Template rows of one family share their instruction, so two rows that differ in a single
# filler can look like near duplicates to a MinHash/Jaccard filter.  To keep the *planted*
# near duplicates the only ones, a candidate is rejected when its character 5-gram Jaccard
# similarity (after NFKC + lower-casing + whitespace folding) with an accepted row of the same
# family reaches NEAR_GUARD.
NEAR_GUARD = 0.7
_FAMILY_SHINGLES: dict[str, list[set[str]]] = {}


def shingles(text: str, k: int = 5) -> set[str]:
    """Character ``k``-grams of the normalised text.

    >>> sorted(shingles("abcdef", 5))
    ['abcde', 'bcdef']
    """
    t = norm(text)
    return {t[i : i + k] for i in range(max(1, len(t) - k + 1))}


def too_similar(family: str, text: str) -> bool:
    """True when ``text`` is a near duplicate of an accepted text of ``family`` (else accept it)."""
    sh = shingles(text)
    for other in _FAMILY_SHINGLES.get(family, ()):
        inter = len(sh & other)
        if inter and inter / (len(sh) + len(other) - inter) >= NEAR_GUARD:
            return True
    _FAMILY_SHINGLES.setdefault(family, []).append(sh)
    return False


def collect(factory: Callable[[], dict], n: int, max_tries: int = 50000) -> list[dict]:
    """Call ``factory()`` until ``n`` unique, mutually dissimilar Alpaca rows are produced."""
    rows = []
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(
                f"could not produce {n} unique rows from {factory.__name__} (got {len(rows)})"
            )
        r = factory()
        key = alpaca_key(r)
        if key in _SEEN:
            continue
        if too_similar(r["instruction"], " ".join([r["instruction"], r["input"], r["output"]])):
            continue
        claim(key)
        rows.append(r)
    return rows


def from_list(items, make: Callable) -> list[dict]:
    """Turn every item of a fixed list into a row (skipping accidental duplicates)."""
    rows = []
    for it in items:
        r = make(it)
        if claim(alpaca_key(r)):
            rows.append(r)
    return rows
