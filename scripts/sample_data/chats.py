"""Clean chat conversations (``chat_sharegpt.jsonl``): single and multi-turn, English and Chinese.

The turns are templates in ``tables/chats.json``; each conversation is written in the ShareGPT
(``conversations``) or OpenAI (``messages``) format, some with a system prompt.
"""

from __future__ import annotations

from .common import chat_key, claim, is_seen, load_tables, rng, too_similar
from .en_rows import COUNTRIES, EN_OPPOSITES, EN_SUBJECTS, EN_UNITS, EN_VERBS
from .zh_rows import ZH_OPPOSITES, ZH_UNITS

_T = load_tables("chats")
EN_SYSTEMS = _T["EN_SYSTEMS"]
ZH_SYSTEMS = _T["ZH_SYSTEMS"]


def _turns(templates, **values) -> list[tuple[str, str]]:
    return [(u.format(**values), a.format(**values)) for u, a in templates]


def _multi(spec: dict, values: dict, follow_up_values=dict) -> list[tuple[str, str]]:
    """The spec's turns, plus its follow-up turn half of the time."""
    turns = _turns(spec["turns"], **values)
    if rng.random() < 0.5:
        turns += _turns(spec["follow_up"], **values, **follow_up_values())
    return turns


_EN_SINGLE = _T["EN_SINGLE_TURN"]
_ZH_SINGLE = _T["ZH_SINGLE_TURN"]


def _single(k: int, zh: bool) -> list[tuple[str, str]]:
    """One question and answer; ``k`` picks the kind (only English has the fifth, past tense)."""
    table = _ZH_SINGLE if zh else _EN_SINGLE
    if k == 0:
        c = rng.choice(COUNTRIES)
        i = 2 if zh else 0
        return _turns(table["capital"], country=c[i], capital=c[i + 1])
    if k == 1:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return _turns(table["addition"], a=a, b=b, sum=a + b)
    if k == 2:
        fr, to, f = rng.choice(ZH_UNITS if zh else EN_UNITS)
        n = rng.randint(2, 30)
        return _turns(table["unit"], n=n, unit=fr, to=to, m=n * f)
    if k == 3:
        w, o = rng.choice(ZH_OPPOSITES if zh else EN_OPPOSITES)
        return _turns(table["opposite"], word=w, opposite=o)
    s = rng.choice(EN_SUBJECTS)
    pres, pst = rng.choice(EN_VERBS)
    return _turns(table["past_tense"], subject=s, verb=pres, past=pst)


def chat_single_en():
    return _single(rng.randrange(5), zh=False)


def chat_single_zh():
    return _single(rng.randrange(4), zh=True)


def _capitals(spec: dict, zh: bool) -> list[tuple[str, str]]:
    c1, c2 = rng.sample(COUNTRIES, 2)
    i = 2 if zh else 0
    values = {"country1": c1[i], "capital1": c1[i + 1], "country2": c2[i], "capital2": c2[i + 1]}
    return _multi(spec, values)


def _arithmetic(spec: dict, subtract: bool) -> list[tuple[str, str]]:
    a, b, d = rng.randint(2, 50), rng.randint(2, 50), rng.randint(2, 9)
    values = {"a": a, "b": b, "d": d, "sum": a + b, "product": (a + b) * d}

    def follow_up_values() -> dict:
        if not subtract:
            return {}
        e = rng.randint(1, 50)
        return {"e": e, "difference": (a + b) * d - e}

    return _multi(spec, values, follow_up_values)


def _time(spec: dict) -> list[tuple[str, str]]:
    n = rng.randint(2, 12)
    return _multi(spec, {"n": n, "minutes": n * 60, "seconds": n * 3600})


def chat_multi_en():
    t = _T["EN_MULTI_TURN"]
    k = rng.randrange(4)
    if k == 0:
        return _capitals(t["capitals"], zh=False)
    if k == 1:
        return _arithmetic(t["arithmetic"], subtract=True)
    if k == 2:
        return _time(t["time"])
    (w1, o1), (w2, o2) = rng.sample(EN_OPPOSITES, 2)
    return _multi(t["opposites"], {"word1": w1, "opposite1": o1, "word2": w2, "opposite2": o2})


def chat_multi_zh():
    t = _T["ZH_MULTI_TURN"]
    k = rng.randrange(3)
    if k == 0:
        return _capitals(t["capitals"], zh=True)
    if k == 1:
        return _arithmetic(t["arithmetic"], subtract=False)
    return _time(t["time"])


def make_chat(turns, system=None, fmt="sharegpt"):
    if fmt == "sharegpt":
        conv = []
        if system:
            conv.append({"from": "system", "value": system})
        for u, a in turns:
            conv.append({"from": "human", "value": u})
            conv.append({"from": "gpt", "value": a})
        return {"conversations": conv}
    msgs = []
    if system:
        msgs.append({"role": "system", "content": system})
    for u, a in turns:
        msgs.append({"role": "user", "content": u})
        msgs.append({"role": "assistant", "content": a})
    return {"messages": msgs}


def chat_turns(obj):
    """(role, text) list for either chat format."""
    if "conversations" in obj:
        return obj["conversations"], "from", "value"
    return obj["messages"], "role", "content"


def collect_chats(factory, n, lang, system_p):
    out = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 20000:
            raise RuntimeError("chat generation stuck")
        turns = factory()
        key = chat_key(turns)
        if is_seen(key) or too_similar("chat", " ".join(u + " " + a for u, a in turns)):
            continue
        claim(key)
        system = None
        if rng.random() < system_p:
            system = rng.choice(EN_SYSTEMS if lang == "en" else ZH_SYSTEMS)
        fmt = "sharegpt" if rng.random() < 0.6 else "openai"
        out.append(make_chat(turns, system, fmt))
    return out
