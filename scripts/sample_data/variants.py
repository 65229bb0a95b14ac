"""Row transformations that turn a clean row into a defect row or a near duplicate of it."""

from __future__ import annotations

import copy
import string

from .chats import chat_turns
from .common import load_tables, rng

_T = load_tables("near_duplicates")
EN_SWAPS = _T["EN_SWAPS"]
ZH_SWAPS = _T["ZH_SWAPS"]
CHAT_SWAPS = _T["CHAT_SWAPS"]
FW = {c: chr(ord(c) + 0xFEE0) for c in string.ascii_letters + string.digits}
FW_PUNCT = _T["FW_PUNCT"]


def to_fullwidth(s: str, punct=True) -> str:
    table = dict(FW)
    if punct:
        table.update(FW_PUNCT)
    return "".join(table.get(c, c) for c in s)


def swap_word(text: str, swaps):
    opts = [(a, b) for a, b in swaps if a in text]
    if not opts:
        return None
    a, b = rng.choice(opts)
    return text.replace(a, b, 1)


def near_variant(row: dict, kind: str, lang: str) -> dict:
    r = copy.deepcopy(row)
    if kind == "word_changed":
        new = swap_word(r["input"], EN_SWAPS if lang == "en" else ZH_SWAPS)
        assert new is not None
        r["input"] = new
    elif kind == "extra_punctuation":
        if lang == "en":
            r["output"] = (
                r["output"].rstrip(".") + "!!!" if rng.random() < 0.5 else r["output"] + ".."
            )
            r["instruction"] = r["instruction"].rstrip("?.") + "??"
        else:
            r["output"] = r["output"] + "！！"
            r["instruction"] = (
                r["instruction"] + "？？"
                if r["instruction"].endswith("？")
                else r["instruction"] + "。。"
            )
    elif kind == "casing":
        if rng.random() < 0.5:
            r["instruction"] = r["instruction"].upper()
        else:
            r["instruction"] = r["instruction"].lower()
            r["output"] = r["output"].lower()
        if lang == "en" and r["input"]:
            r["input"] = r["input"].lower()
    elif kind == "whitespace":
        r["instruction"] = "  " + r["instruction"].replace(" ", "   ", 2) + " \t"
        if lang == "en":
            r["output"] = r["output"].replace(" ", "  ") + "\n\n"
        else:
            r["output"] = " " + r["output"] + "  \n"
        if r["input"]:
            r["input"] = r["input"] + "   "
    elif kind == "fullwidth":
        if lang == "en":
            r["instruction"] = to_fullwidth(r["instruction"], punct=True)
            r["input"] = to_fullwidth(r["input"], punct=False)
        else:
            r["instruction"] = to_fullwidth(r["instruction"], punct=False)
            r["output"] = to_fullwidth(r["output"], punct=False)
    else:
        raise ValueError(kind)
    return r


def chat_near_variant(obj, kind):
    o = copy.deepcopy(obj)
    msgs, rk, vk = chat_turns(o)
    first_user = next(m for m in msgs if m[rk] in ("human", "user"))
    if kind == "casing":
        first_user[vk] = first_user[vk].upper()
    elif kind == "whitespace":
        first_user[vk] = "  " + first_user[vk].replace(" ", "  ") + "\n"
    elif kind == "extra_punctuation":
        first_user[vk] = first_user[vk] + "??!"
    elif kind == "word_changed":
        v = first_user[vk]
        a = next(a for a in CHAT_SWAPS if a in v)
        first_user[vk] = v.replace(a, CHAT_SWAPS[a], 1)
    return o


def html_variant(row, variant, lang):
    r = copy.deepcopy(row)
    if lang == "en":
        if variant == 0:
            if r["input"]:
                r["input"] = "<p>" + r["input"] + "</p>"
            else:
                r["output"] = "<p>" + r["output"] + "</p>"
        elif variant == 1:
            r["output"] = "<b>" + r["output"] + "</b>"
        elif variant == 2:
            tgt = "input" if r["input"] else "output"
            txt = r[tgt]
            txt = txt.replace(". ", ".<br/>") if ". " in txt else txt + "<br/>"
            r[tgt] = txt.replace(" and ", " &amp; ")
        elif variant == 3:
            tgt = "input" if r["input"] else "output"
            r[tgt] = '<div class="content"><span>' + r[tgt] + "</span></div>"
        elif variant == 4:
            r["instruction"] = r["instruction"].replace(" ", "&nbsp;", 1)
            r["output"] = "<p><i>" + r["output"] + "</i></p>"
        else:
            tgt = "input" if r["input"] else "output"
            r[tgt] = (
                r[tgt].replace('"', "&quot;") + ' <a href="https://example.com/more">Read more</a>'
            )
    else:
        if variant % 3 == 0:
            tgt = "input" if r["input"] else "output"
            r[tgt] = "<p>" + r[tgt] + "</p>"
        elif variant % 3 == 1:
            tgt = "input" if r["input"] else "output"
            r[tgt] = r[tgt].replace("。", "。<br/>", 1) + "&nbsp;"
        else:
            r["output"] = "<b>" + r["output"] + "</b>"
    return r


def insert_mid(s: str, token: str) -> str:
    """Insert ``token`` at a word boundary (or a character boundary for CJK) near the middle."""
    if not s:
        return token
    spaces = [i for i, c in enumerate(s) if c == " "]
    i = spaces[len(spaces) // 2] if spaces else max(1, len(s) // 2)
    return s[:i] + token + s[i:]


def control_variant(row, ch):
    r = copy.deepcopy(row)
    if ch == "\x00":
        r["instruction"] = r["instruction"] + "\x00"
    elif ch == "\x07":
        r["output"] = insert_mid(r["output"], "\x07")
    elif ch == "\x1b":
        tgt = "input" if r["input"] else "output"
        r[tgt] = "\x1b[31m" + r[tgt] + "\x1b[0m"
    elif ch == "\u200b":
        tgt = "input" if r["input"] else "instruction"
        s = r[tgt]
        i = max(1, len(s) // 3)
        r[tgt] = s[:i] + "\u200b" + s[i:]
    elif ch == "\r":
        r["output"] = r["output"] + "\r"
        if r["input"]:
            r["input"] = r["input"].replace(". ", ".\r\n", 1)
    return r
