"""The four output files under construction: pools of clean rows and the ledger of defects.

A defect is either a clean row taken out of its pool and changed (``Pool.pop``), or a new row;
either way it goes into ``Sample.extra`` (placed at a random position later) or ``Sample.mid``
(placed in the middle half) and is counted in the ledger that ``DEFECTS.json`` is written from.
"""

from __future__ import annotations

import json
from collections import Counter

from .chats import chat_turns
from .common import rng, shingles

EN, ZH, CH, CSV = "alpaca_en.json", "alpaca_zh.jsonl", "chat_sharegpt.jsonl", "reviews.csv"
FILES = (EN, ZH, CH, CSV)


class Pool:
    """Clean rows of one file; rows can be popped out to become defect rows."""

    def __init__(self, rows):
        self.rows = list(rows)
        rng.shuffle(self.rows)
        self.used = set()  # ids of rows used as duplicate sources

    def pop(self, pred=lambda r: True):
        """Take a clean row out of the file (to be changed into a defect row)."""
        for i, r in enumerate(self.rows):
            if id(r) not in self.used and pred(r):
                return self.rows.pop(i)
        raise RuntimeError("pool exhausted")

    def pick(self, pred=lambda r: True):
        """Choose a clean row to duplicate (it stays in the file)."""
        cands = [r for r in self.rows if id(r) not in self.used and pred(r)]
        r = rng.choice(cands)
        self.used.add(id(r))
        return r


class Sample:
    """Pools of clean rows per file, the defect rows to insert, and what was planted."""

    def __init__(self, en_rows, zh_rows, rev_rows, chat_rows):
        # Shuffled in this order: the order fixes the random stream.
        self.en, self.zh, self.rv = Pool(en_rows), Pool(zh_rows), Pool(rev_rows)
        self.ch = Pool(chat_rows)
        self.extra: dict[str, list] = {f: [] for f in FILES}
        self.mid: dict[str, list] = {f: [] for f in FILES}
        self.defects: Counter = Counter()
        self.per_file: dict[str, Counter] = {}
        self.subtypes: Counter = Counter()
        self.near_pairs: list = []  # (kind, source row, variant row)

    def tag(self, fname, kind, n=1, sub=None):
        self.defects[kind] += n
        self.per_file.setdefault(fname, Counter())[kind] += n
        if sub:
            self.subtypes[f"{kind}:{sub}"] += n

    def add(self, fname, item, kind, sub=None):
        """Insert ``item`` at a random position of ``fname`` as one ``kind`` defect."""
        self.extra[fname].append(item)
        self.tag(fname, kind, sub=sub)

    def add_mid(self, fname, item, kind):
        """Insert ``item`` in the middle half of ``fname`` (a reader must not stop at it)."""
        self.mid[fname].append(item)
        self.tag(fname, kind)

    def add_near(self, fname, kind, src, variant):
        self.near_pairs.append((kind, src, variant))
        self.add(fname, variant, "near_duplicate", sub=kind)


def place(clean, extras, mid_only=()):
    """Insert ``extras`` at random positions; items in ``mid_only`` go in the middle half."""
    out = list(clean)
    for e in extras:
        out.insert(rng.randint(0, len(out)), e)
    for e in mid_only:
        n = len(out)
        out.insert(rng.randint(n // 4, 3 * n // 4), e)
    return out


def is_long(r, n=80):
    return isinstance(r.get("input"), str) and len(r["input"]) >= n


def role_messages(obj, roles):
    """The messages of a chat whose role is one of ``roles``, and the key of their text."""
    msgs, rk, vk = chat_turns(obj)
    return [m for m in msgs if m[rk] in roles], vk


def first_user(obj):
    msgs, vk = role_messages(obj, ("human", "user"))
    return msgs[0], vk


def first_assistant(obj):
    msgs, vk = role_messages(obj, ("gpt", "assistant"))
    return msgs[0], vk


def canon(item) -> str:
    """Canonical serialisation used to count verbatim duplicates across files/formats."""
    if isinstance(item, str):
        return "RAW:" + item
    if "conversations" in item or "messages" in item:
        return json.dumps(item, ensure_ascii=False, sort_keys=True)
    return json.dumps(
        {k: item.get(k, "") for k in ("instruction", "input", "output", "task", "label")},
        ensure_ascii=False,
        sort_keys=True,
    )


def flat_text(item) -> str:
    if "conversations" in item or "messages" in item:
        msgs, _, vk = chat_turns(item)
        return " ".join(m[vk] for m in msgs)
    return " ".join(str(item.get(k, "")) for k in ("instruction", "input", "output"))


def jaccard5(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)
