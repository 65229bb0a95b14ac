#!/usr/bin/env python3
"""Generate the small, deterministic sample SFT corpus under ``data/sample/``.

Everything here is produced from hand-written templates and fact lists written for this
project (``scripts/sample_data/tables/*.json``, no third-party text). The output is released
under CC0 1.0.

Run from the repository root (or anywhere)::

    python3 scripts/make_sample_data.py [--out DIR]

Only the Python standard library is used and all randomness comes from a single
``random.Random(1234)``, so re-running produces byte-identical files. The steps below draw
from that one stream: reordering them changes the output.

Files written (see ``data/README.md`` for the full description):

* ``alpaca_en.json``      JSON array of Alpaca objects (English, plus planted defects)
* ``alpaca_zh.jsonl``     JSON Lines of Alpaca objects (Simplified Chinese, plus defects)
* ``chat_sharegpt.jsonl`` JSON Lines, ShareGPT ``conversations`` and OpenAI ``messages``
* ``reviews.csv``         CSV ``instruction,input,output,task,label`` sentiment rows
* ``DEFECTS.json``        defect type -> number of planted rows
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sample_data import duplicates, planted, popped
from sample_data.chats import (
    chat_multi_en,
    chat_multi_zh,
    chat_single_en,
    chat_single_zh,
    collect_chats,
)
from sample_data.en_rows import (
    en_arith,
    en_capitals,
    en_colours,
    en_defs,
    en_opposites,
    en_plurals,
    en_rewrites,
    en_summaries,
    en_topics,
    en_units,
)
from sample_data.output import assemble, check_and_report, write_files
from sample_data.reviews import reviews
from sample_data.sample import Sample
from sample_data.zh_rows import (
    zh_arith,
    zh_capitals,
    zh_colours,
    zh_defs,
    zh_opposites,
    zh_rewrites,
    zh_summaries,
    zh_topics,
    zh_units,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "data", "sample")

# Each step plants one kind of defect (its docstring says which stage must catch it).
DEFECT_STEPS = [
    # clean rows taken out and changed
    popped.plant_empty_outputs,
    popped.plant_empty_instructions,
    popped.plant_html,
    popped.plant_control_chars,
    popped.plant_wrong_types,
    popped.plant_low_alnum,
    # new rows
    planted.plant_pii,
    planted.plant_over_long,
    planted.plant_repetitive,
    planted.plant_foreign_language,
    planted.plant_code_blocks,
    planted.plant_traditional_chinese,
    planted.plant_malformed_json,
    # copies of clean rows that stay
    duplicates.plant_near_duplicates,
    duplicates.plant_exact_duplicates,
]


def clean_rows() -> Sample:
    """All clean rows, family by family, in the order the random stream needs."""
    en_families = [
        en_capitals, en_arith, en_units, en_defs, en_colours, en_opposites, en_plurals,
        en_summaries, en_rewrites, en_topics,
    ]  # fmt: skip
    zh_families = [
        zh_capitals, zh_arith, zh_units, zh_defs, zh_colours, zh_opposites, zh_summaries,
        zh_rewrites, zh_topics,
    ]  # fmt: skip
    en_rows = [r for family in en_families for r in family()]
    zh_rows = [r for family in zh_families for r in family()]
    rev_rows = reviews("en", 93) + reviews("zh", 63)
    chats = (
        collect_chats(chat_single_en, 60, "en", 0.2)
        + collect_chats(chat_multi_en, 24, "en", 0.3)
        + collect_chats(chat_single_zh, 40, "zh", 0.2)
        + collect_chats(chat_multi_zh, 16, "zh", 0.3)
    )
    return Sample(en_rows, zh_rows, rev_rows, chats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT_DIR, help="output folder (default: data/sample)")
    args = ap.parse_args(argv)

    sample = clean_rows()
    for plant in DEFECT_STEPS:
        plant(sample)
    final = assemble(sample)
    write_files(args.out, final, sample)
    check_and_report(final, sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
