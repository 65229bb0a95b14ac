"""Clean chat conversations (``chat_sharegpt.jsonl``): single and multi-turn, English and Chinese.

Each conversation is written in the ShareGPT (``conversations``) or OpenAI (``messages``)
format, some with a system prompt from ``tables/chats.json``.
"""

from __future__ import annotations

from .common import chat_key, claim, is_seen, load_tables, rng, too_similar
from .en_rows import COUNTRIES, EN_OPPOSITES, EN_SUBJECTS, EN_UNITS, EN_VERBS
from .zh_rows import ZH_OPPOSITES, ZH_UNITS

_T = load_tables("chats")
EN_SYSTEMS = _T["EN_SYSTEMS"]
ZH_SYSTEMS = _T["ZH_SYSTEMS"]


def chat_single_en():
    k = rng.randrange(5)
    if k == 0:
        c = rng.choice(COUNTRIES)
        return [
            (f"Can you tell me the capital of {c[0]}?", f"Sure! The capital of {c[0]} is {c[1]}.")
        ]
    if k == 1:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return [(f"Could you add {a} and {b} for me?", f"Sure! {a} plus {b} equals {a + b}.")]
    if k == 2:
        fr, to, f = rng.choice(EN_UNITS)
        n = rng.randint(2, 30)
        return [(f"Please convert {n} {fr} into {to}.", f"Sure! {n} {fr} equals {n * f} {to}.")]
    if k == 3:
        w, o = rng.choice(EN_OPPOSITES)
        return [
            (
                f'Give me a word that means the opposite of "{w}".',
                f'Sure! The opposite of "{w}" is "{o}".',
            )
        ]
    s = rng.choice(EN_SUBJECTS)
    pres, pst = rng.choice(EN_VERBS)
    return [(f"Put this sentence into the past tense: {s} {pres}.", f"Sure! {s} {pst}.")]


def chat_single_zh():
    k = rng.randrange(4)
    if k == 0:
        c = rng.choice(COUNTRIES)
        return [(f"请告诉我{c[2]}的首都是哪座城市。", f"好的！{c[2]}的首都是{c[3]}。")]
    if k == 1:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return [(f"帮我算一下{a}加{b}。", f"好的！{a}加{b}等于{a + b}。")]
    if k == 2:
        fr, to, f = rng.choice(ZH_UNITS)
        n = rng.randint(2, 30)
        return [(f"请把{n}{fr}换算成{to}。", f"好的！{n}{fr}等于{n * f}{to}。")]
    w, o = rng.choice(ZH_OPPOSITES)
    return [(f"请说出“{w}”的反义词。", f"好的！“{w}”的反义词是“{o}”。")]


def chat_multi_en():
    k = rng.randrange(4)
    if k == 0:
        c1, c2 = rng.sample(COUNTRIES, 2)
        turns = [
            (f"What is the capital of {c1[0]}?", f"The capital of {c1[0]} is {c1[1]}."),
            (f"And what about {c2[0]}?", f"The capital of {c2[0]} is {c2[1]}."),
        ]
        if rng.random() < 0.5:
            turns.append(
                (
                    "Which city did I ask about first?",
                    f"You first asked about {c1[1]}, the capital of {c1[0]}.",
                )
            )
        return turns
    if k == 1:
        a, b, d = rng.randint(2, 50), rng.randint(2, 50), rng.randint(2, 9)
        turns = [
            (f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."),
            (f"Now multiply that by {d}.", f"{a + b} times {d} is {(a + b) * d}."),
        ]
        if rng.random() < 0.5:
            e = rng.randint(1, 50)
            turns.append(
                (
                    f"And subtract {e} from the result.",
                    f"{(a + b) * d} minus {e} is {(a + b) * d - e}.",
                )
            )
        return turns
    if k == 2:
        n = rng.randint(2, 12)
        turns = [
            (f"How many minutes are in {n} hours?", f"{n} hours is {n * 60} minutes."),
            ("And how many seconds is that?", f"{n * 60} minutes is {n * 3600} seconds."),
        ]
        if rng.random() < 0.5:
            turns.append(("Thanks!", "You're welcome!"))
        return turns
    (w1, o1), (w2, o2) = rng.sample(EN_OPPOSITES, 2)
    turns = [
        (f'What is the opposite of "{w1}"?', f'The opposite of "{w1}" is "{o1}".'),
        (f'And the opposite of "{w2}"?', f'The opposite of "{w2}" is "{o2}".'),
    ]
    if rng.random() < 0.5:
        turns.append(("Thanks for your help!", "You're welcome!"))
    return turns


def chat_multi_zh():
    k = rng.randrange(3)
    if k == 0:
        c1, c2 = rng.sample(COUNTRIES, 2)
        turns = [
            (f"{c1[2]}的首都是哪里？", f"{c1[2]}的首都是{c1[3]}。"),
            (f"那{c2[2]}呢？", f"{c2[2]}的首都是{c2[3]}。"),
        ]
        if rng.random() < 0.5:
            turns.append(("谢谢！", "不客气！"))
        return turns
    if k == 1:
        a, b, d = rng.randint(2, 50), rng.randint(2, 50), rng.randint(2, 9)
        turns = [
            (f"{a}加{b}等于多少？", f"{a}加{b}等于{a + b}。"),
            (f"再乘以{d}呢？", f"{a + b}乘以{d}等于{(a + b) * d}。"),
        ]
        if rng.random() < 0.5:
            turns.append(("谢谢！", "不客气！"))
        return turns
    n = rng.randint(2, 12)
    turns = [
        (f"{n}小时等于多少分钟？", f"{n}小时等于{n * 60}分钟。"),
        ("那等于多少秒？", f"{n * 60}分钟等于{n * 3600}秒。"),
    ]
    if rng.random() < 0.5:
        turns.append(("谢谢！", "不客气！"))
    return turns


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
