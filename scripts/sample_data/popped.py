"""Defects made by changing a clean row taken out of its file (so their content stays unique).

Each ``plant_*`` function plants one kind of defect in every file that gets it; ``main()``
calls them in a fixed order because each draws from the shared random stream.
"""

from __future__ import annotations

from .common import load_tables
from .reviews import ZH_REVIEW_INSTR
from .sample import CH, CSV, EN, ZH, Sample, first_assistant, first_user, role_messages
from .variants import control_variant, html_variant, insert_mid

_T = load_tables("planted")


def _rv_lang(r) -> str:
    return "zh" if r["instruction"] == ZH_REVIEW_INSTR else "en"


def _label(lab):
    return lambda x: x["label"] == lab


def plant_empty_outputs(s: Sample) -> None:
    """Empty answers (Alpaca ``output`` "" or the last assistant turn ""); ``clean`` drops
    them as ``empty_output``."""
    for _ in range(6):
        r = s.en.pop()
        r["output"] = ""
        s.add(EN, r, "empty_output")
    for _ in range(4):
        r = s.zh.pop()
        r["output"] = ""
        s.add(ZH, r, "empty_output")
    for lab in ("positive", "negative"):
        r = s.rv.pop(_label(lab))
        r["output"] = ""
        s.add(CSV, r, "empty_output")
    for _ in range(3):
        o = s.ch.pop()
        msgs, vk = role_messages(o, ("gpt", "assistant"))
        msgs[-1][vk] = ""
        s.add(CH, o, "empty_output")


def plant_empty_instructions(s: Sample) -> None:
    """Empty or blank instructions on rows that still have an input; ``clean`` drops them as
    ``empty_instruction``."""
    for i in range(3):
        r = s.en.pop(lambda x: bool(x["input"]))
        r["instruction"] = "" if i < 2 else "   "
        s.add(EN, r, "empty_instruction")
    for _ in range(2):
        r = s.zh.pop(lambda x: bool(x["input"]))
        r["instruction"] = ""
        s.add(ZH, r, "empty_instruction")


def plant_html(s: Sample) -> None:
    """HTML tags and entities around or inside the text; ``clean`` strips them (outside code
    blocks) and keeps the row."""
    for v in range(12):
        s.add(EN, html_variant(s.en.pop(), v % 6, "en"), "html")
    for v in range(6):
        s.add(ZH, html_variant(s.zh.pop(), v, "zh"), "html")
    for v, lab in enumerate(("positive", "negative", "positive")):
        r = s.rv.pop(_label(lab))
        row = (
            html_variant(r, [0, 2, 3][v], _rv_lang(r))
            if _rv_lang(r) == "en"
            else html_variant(r, v, "zh")
        )
        s.add(CSV, row, "html")
    for t in _T["HTML_CHAT_TEMPLATES"]:
        o = s.ch.pop()
        a, vk = first_assistant(o)
        a[vk] = t.format(a[vk].replace(" and ", " &amp; "))
        s.add(CH, o, "html")


def plant_control_chars(s: Sample) -> None:
    """NUL, BEL, ANSI escapes, zero-width spaces and stray carriage returns; ``clean`` removes
    them and keeps the row."""
    for c in ["\x00", "\x07", "\x1b", "\u200b", "\r", "\x00"]:
        s.add(EN, control_variant(s.en.pop(), c), "control_chars", sub=repr(c))
    for c in ["\u200b", "\x07", "\r", "\x00"]:
        s.add(ZH, control_variant(s.zh.pop(), c), "control_chars", sub=repr(c))
    for c in ["\x1b", "\u200b", "\x07"]:
        o = s.ch.pop()
        u, vk = first_user(o)
        u[vk] = ("\x1b[1m" + u[vk] + "\x1b[0m") if c == "\x1b" else insert_mid(u[vk], c)
        s.add(CH, o, "control_chars", sub=repr(c))
    for c, lab in (("\u200b", "positive"), ("\x1b", "negative")):
        s.add(CSV, control_variant(s.rv.pop(_label(lab)), c), "control_chars", sub=repr(c))


def plant_wrong_types(s: Sample) -> None:
    """Fields that are not strings (list, dict, null, number, bool); ``ingest`` quarantines
    them ("must be text" / "null")."""
    r = s.en.pop()
    o = r["output"]
    h = len(o) // 2
    r["output"] = [o[:h].strip(), o[h:].strip()]
    s.add(EN, r, "wrong_type", sub="output_list")
    r = s.en.pop()
    r["instruction"] = {"text": r["instruction"]}
    s.add(EN, r, "wrong_type", sub="instruction_dict")
    r = s.en.pop()
    r["output"] = None
    s.add(EN, r, "wrong_type", sub="output_null")
    r = s.en.pop(lambda x: bool(x["input"]))
    r["input"] = 42
    s.add(EN, r, "wrong_type", sub="input_number")
    r = s.zh.pop()
    r["output"] = True
    s.add(ZH, r, "wrong_type", sub="output_bool")
    r = s.zh.pop()
    o = r["output"]
    h = len(o) // 2
    r["output"] = [o[:h], o[h:]]
    s.add(ZH, r, "wrong_type", sub="output_list")


def plant_low_alnum(s: Sample) -> None:
    """Answers made of punctuation and emoji; ``clean`` drops them by the alphanumeric-ratio
    filter."""
    for o in _T["EN_LOW_ALNUM_OUTPUTS"]:
        r = s.en.pop()
        r["output"] = o
        s.add(EN, r, "low_alnum")
    r = s.zh.pop()
    r["output"] = _T["ZH_LOW_ALNUM_OUTPUT"]
    s.add(ZH, r, "low_alnum")
    o = s.ch.pop()
    a, vk = first_assistant(o)
    a[vk] = _T["CHAT_LOW_ALNUM_OUTPUT"]
    s.add(CH, o, "low_alnum")
