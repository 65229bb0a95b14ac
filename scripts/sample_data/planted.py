"""Defects that are new rows: PII, over-long and repetitive answers, other languages, code with
angle brackets, Traditional Chinese, malformed JSON lines.

Their text is in ``tables/pii.json`` and ``tables/planted.json``; each ``plant_*`` function
plants one kind, and ``main()`` calls them in a fixed order (they draw from the shared random
stream).
"""

from __future__ import annotations

from .chats import make_chat
from .common import arow, load_tables, rng
from .pii import (
    PII,
    akia_key,
    cn_id_check,
    ghp_key,
    group4,
    luhn_ok,
    make_card,
    make_cn_id,
    make_cn_mobile,
    make_us_phone,
    sk_key,
)
from .sample import CH, CSV, EN, ZH, Sample

_T = load_tables("planted")


def table_row(spec: dict, **values) -> dict:
    """An Alpaca row from a table entry; ``values`` fill its ``{placeholders}`` when given."""
    fields = [spec.get(k) for k in ("instruction", "input", "output", "task", "label")]
    if values:
        fields = [f.format(**values) if isinstance(f, str) else f for f in fields]
    return arow(*fields)


def _pii_values() -> dict:
    """Generate the fake PII the table rows refer to (in the order the random stream needs)."""
    cards = [*PII["TEST_CARDS"], group4(make_card("4")), group4(make_card("51"), "-")]
    for c in cards:
        assert luhn_ok(c), c
    ids = [make_cn_id() for _ in range(5)]
    for i, _ in ids:
        assert cn_id_check(i[:17]) == i[17]
    ph1, ph2, ph3 = make_us_phone(0), make_us_phone(1), make_us_phone(0)
    sk, ak, gh = sk_key(), akia_key(), ghp_key()
    mobiles = [make_cn_mobile() for _ in range(5)]
    sk2, ak2, gh2 = sk_key(), akia_key(), ghp_key()
    ph4 = make_us_phone(1)
    ph5, ph6 = make_us_phone(0), make_us_phone(1)
    return {
        "email": PII["EMAILS"],
        "card": cards,
        "ip": PII["IPS"],
        "cn_id": [i for i, _ in ids],
        "birth": ids[4][1],
        "phone": [ph1, ph2, ph3, ph4, ph5, ph6],
        "cn_mobile": mobiles,
        "sk": sk, "ak": ak, "gh": gh, "sk2": sk2, "ak2": ak2, "gh2": gh2,
    }  # fmt: skip


def plant_pii(s: Sample) -> None:
    """E-mails, US and Chinese phone numbers, IPs, API keys, card numbers, Chinese resident IDs
    inside otherwise normal rows; ``clean`` replaces them with ``[EMAIL]``, ``[PHONE]`` ..."""
    values = _pii_values()
    for spec in PII["EN_ROWS"]:
        s.add(EN, table_row(spec, **values), "pii", sub=spec["kind"])
    for spec in PII["ZH_ROWS"]:
        s.add(ZH, table_row(spec, **values), "pii", sub=spec["kind"])
    for i, spec in enumerate(PII["CHATS"]):
        turns = [tuple(t.format(**values) for t in turn) for turn in spec["turns"]]
        s.add(CH, make_chat(turns, None, "sharegpt" if i % 2 == 0 else "openai"), "pii",
              sub=spec["kind"])  # fmt: skip
    for spec in PII["REVIEW_ROWS"]:
        s.add(CSV, table_row(spec, **values), "pii", sub=spec["kind"])


def plant_over_long(s: Sample) -> None:
    """Answers of 20,000+ characters; ``clean`` drops them as ``too_long``."""
    prompt = _T["OVER_LONG_PROMPTS"]
    hist = []
    year = 1640
    while sum(len(x) + 1 for x in hist) < 22000:
        hist.append(f"In {year}, the town of Millbrook {rng.choice(_T['MILLBROOK_EVENTS'])}.")
        year += 1
    s.add(EN, arow(prompt["history"], "", " ".join(hist)), "over_long")
    para = _T["PHOTOSYNTHESIS_PARAGRAPH"]
    s.add(EN, arow(prompt["photosynthesis"], "", (para * 70).strip(), "qa"), "over_long")
    count = ", ".join(str(i) for i in range(1, 4501)) + "."
    s.add(EN, arow(prompt["count"], "", count), "over_long")
    s.add(ZH, arow(prompt["yangtze"], "", _T["YANGTZE_PARAGRAPH"] * 360, "qa"), "over_long")
    story = (_T["FOX_STORY"] * 110).strip()
    s.add(CH, make_chat([(prompt["story"], story)], None, "sharegpt"), "over_long")


def plant_repetitive(s: Sample) -> None:
    """One word or line repeated hundreds of times (not over-long); ``clean`` drops them by the
    repetition filter."""

    def answer(spec: dict) -> str:
        return (spec["unit"] * spec["times"]).strip()

    en, zh, chat = (_T["REPETITIVE"][k] for k in ("en", "zh", "chat"))
    s.add(EN, arow(en["prompt"], "", answer(en), "qa"), "repetitive")
    s.add(ZH, arow(zh["prompt"], "", answer(zh), "qa"), "repetitive")
    s.add(CH, make_chat([(chat["prompt"], answer(chat))], None, "openai"), "repetitive")


def plant_foreign_language(s: Sample) -> None:
    """French, German, Spanish rows in the English files, Japanese in the Chinese file;
    ``clean``'s language filter drops them as ``language``."""
    for spec in _T["EN_FOREIGN_ROWS"]:
        s.add(EN, table_row(spec), "foreign_language", sub=spec["lang"])
    for spec in _T["ZH_JAPANESE_ROWS"]:
        s.add(ZH, table_row(spec), "foreign_language", sub="ja")
    for spec in _T["CHAT_FOREIGN"]:
        chat = make_chat([tuple(t) for t in spec["turns"]], None, spec["format"])
        s.add(CH, chat, "foreign_language", sub=spec["lang"])


def plant_code_blocks(s: Sample) -> None:
    """Valid rows whose code uses ``<`` and ``>``: ``clean``'s HTML stripping must leave code
    blocks intact (a check on ``clean``, not a row to drop)."""
    for spec in _T["CODE_ROWS"]:
        s.add(EN, table_row(spec), "code_block_angle_brackets")


def plant_traditional_chinese(s: Sample) -> None:
    """Rows in Traditional Chinese; ``clean`` converts them to Simplified (OpenCC)."""
    for spec in _T["TRADITIONAL_ROWS"]:
        s.add(ZH, table_row(spec), "traditional_chinese")


def plant_malformed_json(s: Sample) -> None:
    """Truncated or trailing-comma JSON lines in the middle of the JSONL files; ``ingest``
    quarantines them as ``malformed JSON`` and reads on."""
    for line in _T["MALFORMED_ZH_LINES"]:
        s.add_mid(ZH, line, "malformed_json")
    for line in _T["MALFORMED_CHAT_LINES"]:
        s.add_mid(CH, line, "malformed_json")
