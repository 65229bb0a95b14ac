from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftops.config import CleanParams
from sftops.data.clean import clean_table
from sftops.data.langid import fast_language, fast_languages
from sftops.data.normalise import (
    _key_of_core,
    alnum_ratio,
    alnum_ratios,
    normalise_text,
    normalise_texts,
    repetition_ratio,
    strip_html,
    to_simplified,
)
from sftops.rowkeys import dedup_key
from sftops.text import ascii_alnum_core
from tests.helpers import canonical_table


def clean(records: list[dict], **overrides: object):
    return clean_table(canonical_table(records), CleanParams(**overrides))


def test_nfkc_turns_full_width_into_half_width() -> None:
    assert normalise_text("ＡＢＣ１２３，ｘ") == "ABC123,x"
    assert normalise_text("法国的首都是哪里？ＡＢＣ") == "法国的首都是哪里？ABC"


def test_control_and_zero_width_characters_are_removed() -> None:
    assert normalise_text("a\x00b\x07c\u200bd\x1b[0m") == "abcd[0m"
    assert normalise_text("line1\r\nline2\rline3") == "line1\nline2\nline3"


def test_whitespace_is_tidied_but_code_indentation_kept() -> None:
    assert normalise_text("  a   b \t c \n\n\n\n d  ") == "a b c\n\nd"
    code = "Here:\n```python\ndef f(x):\n    return x < 1\n```"
    assert normalise_text(code) == code


def test_html_is_stripped_outside_code_and_entities_decoded() -> None:
    assert strip_html("<p>Fish &amp; chips</p><br/>Tasty") == "Fish & chips\n\nTasty"
    assert strip_html("<script>alert(1)</script>ok") == "ok"
    assert strip_html("if a <b and c> d") == "if a <b and c> d"  # not a tag: attribute-free
    assert strip_html("Map<String, Integer> m;") == "Map<String, Integer> m;"
    code = "```html\n<div class='x'>&amp;</div>\n```"
    assert strip_html(code) == code


def test_repetition_and_alnum_ratios_have_known_values() -> None:
    assert repetition_ratio("go " * 20) > 0.9
    assert repetition_ratio("一二三四五六七八九十") == 0.0
    assert repetition_ratio("哈哈哈哈哈哈哈哈哈哈") > 0.8
    assert alnum_ratio("!!!! ????") == 0.0
    assert alnum_ratio("你好,世界") == 0.8


def test_traditional_chinese_becomes_simplified() -> None:
    assert to_simplified("這是一個測試") == "这是一个测试"


def test_each_filter_quarantines_with_its_reason() -> None:
    rows = [
        {"instruction": "What is the capital of France?", "output": "The capital is Paris."},
        {"instruction": "Say something nice about the weather", "output": ""},
        {"instruction": "", "output": "An answer without a question"},
        {"instruction": "Repeat the word the", "output": "the " * 200},
        {"instruction": "What is the meaning of this?", "output": "!!!! ???? ...."},
        {"instruction": "Quelle est la capitale de la France ?", "output": "C'est Paris."},
        {
            "instruction": "Describe the ocean in a long essay",
            "output": "waves and salt " + "x" * 9000,
        },
        {"instruction": "法国的首都是哪里？", "output": "法国的首都是巴黎。"},
    ]
    result = clean(rows)
    assert result.kept["instruction"].tolist() == [rows[0]["instruction"], rows[7]["instruction"]]
    assert result.quarantine["reason"].tolist() == [
        "empty_output",
        "empty_instruction",
        "repetitive",
        "low_alnum_ratio",
        "language",
        "too_long",
    ]
    assert result.quarantine.loc[4, "detail"] == "fr"
    assert result.kept["lang"].tolist() == ["en", "zh"]


def test_exact_duplicates_after_normalisation_are_removed_keeping_the_first() -> None:
    rows = [
        {"instruction": "What is 2 plus 2?", "output": "2 plus 2 is 4."},
        {"instruction": "what is 2 plus 2 ?", "output": "2 plus 2 is 4"},
        {"instruction": "Ｗｈａｔ ｉｓ ２ ｐｌｕｓ ２？", "output": "2 plus 2 is 4."},
        {"instruction": "What is 2 plus 2?", "output": "2 plus 2 is 4."},
        {"instruction": "北京是哪个国家的首都？", "output": "北京是中国的首都。"},
        {"instruction": "北京是哪个国家的首都?", "output": "北京是中国的首都"},
    ]
    result = clean(rows, near_dedup={"enabled": False})
    assert len(result.kept) == 2
    assert result.quarantine["reason"].tolist() == ["exact_duplicate"] * 4
    first_id = result.kept.loc[0, "row_id"]
    assert set(result.quarantine["detail"][:3]) == {first_id}


LIBRARY_ZH = "请概括下面这段关于市中心新图书馆开放的文字，馆内有一万册图书和一个{}儿童阅览室。"


def test_near_duplicates_are_removed_and_distinct_templated_rows_kept() -> None:
    base = (
        "Summarise the following passage about the new library that opened downtown last week "
        "with ten thousand books and a large reading room for children"
    )
    rows = [
        {"instruction": base, "output": "A new downtown library opened with 10,000 books."},
        {
            "instruction": base.replace("large", "big"),
            "output": "A new downtown library opened with 10,000 books.",
        },
        {
            "instruction": "What is the capital of France?",
            "output": "The capital of France is Paris.",
        },
        {
            "instruction": "What is the capital of Germany?",
            "output": "The capital of Germany is Berlin.",
        },
        {
            "instruction": LIBRARY_ZH.format(""),
            "output": "市中心新图书馆开放，藏书一万册。",
        },
        {
            "instruction": LIBRARY_ZH.format("大型"),
            "output": "市中心新图书馆开放，藏书一万册。",
        },
    ]
    result = clean(rows)
    assert result.quarantine["reason"].tolist() == ["near_duplicate", "near_duplicate"]
    kept = result.kept
    assert len(kept) == 4
    assert (kept["cluster_id"] == kept["row_id"]).all()


def test_near_duplicates_kept_when_drop_is_off_share_a_cluster_id() -> None:
    text = "Explain why the sky is blue in two short sentences for a curious child today"
    rows = [
        {"instruction": text, "output": "Sunlight scatters off air molecules."},
        {"instruction": text + " please", "output": "Sunlight scatters off air molecules."},
    ]
    result = clean(rows, near_dedup={"drop": False})
    assert len(result.kept) == 2
    assert result.kept["cluster_id"].nunique() == 1
    assert result.kept.loc[1, "cluster_id"] == result.kept.loc[0, "row_id"]


def test_pii_is_scrubbed_with_typed_placeholders_and_counted() -> None:
    rows = [
        {"instruction": "Email me at jane.doe@example.com", "output": "Sure, I will write to you."},
        {"instruction": "我的手机号是13812345678，请记下", "output": "好的，已经记下了。"},
    ]
    result = clean(rows)
    assert result.kept["instruction"].tolist() == [
        "Email me at [EMAIL]",
        "我的手机号是[PHONE]，请记下",
    ]
    assert result.modified["pii_email"] == 1 and result.modified["pii_phone"] == 1


def test_multi_turn_history_is_normalised_too() -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<b>Hi</b> there"},
                {"role": "assistant", "content": "Hello!  How can I help?"},
                {"role": "user", "content": "Mail admin@example.org for me"},
                {"role": "assistant", "content": "I cannot send email, sorry."},
            ]
        }
    ]
    result = clean(rows)
    assert result.kept.loc[0, "history"] == '[["Hi there", "Hello! How can I help?"]]'
    assert result.kept.loc[0, "instruction"] == "Mail [EMAIL] for me"


text_strategy = st.text(
    alphabet=st.sampled_from([*string.ascii_letters, *" 你好世界中文。,!?<>&\x00\u200b", "\n"]),
    max_size=60,
)
row_strategy = st.fixed_dictionaries(
    {"instruction": text_strategy, "input": text_strategy, "output": text_strategy}
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row_strategy, max_size=25), st.booleans(), st.booleans())
def test_every_row_is_either_kept_or_quarantined(rows, exact_dedup, near_drop) -> None:
    table = canonical_table(rows)
    result = clean_table(
        table, CleanParams(exact_dedup=exact_dedup, near_dedup={"drop": near_drop})
    )
    assert len(result.kept) + len(result.quarantine) == len(table)
    assert sorted(result.kept["row_id"].tolist() + result.quarantine["row_id"].tolist()) == sorted(
        table["row_id"].tolist()
    )
    assert result.quarantine["reason"].notna().all()
    assert result.kept["row_id"].is_unique


# Characters that exercise every branch of the column-wise fast paths: plain ASCII words and
# stop words, double spaces, tabs, newlines, control characters, markup, code fences, symbols,
# accented and CJK letters, full-width forms, the Kelvin sign (lower-cases to ASCII k).
_PIECES = [*"abcdefghijklmnopqrstuvwxyzABC019 ", " the ", " of ", " and ", "  ", "\t", "\n"]
_PIECES += ["\r", "\x07", "\x1c", "<b>", "&amp;", "```", "°", "€", "é", "ï", "你好", "，", "Ａ"]
_PIECES += ["\u212a", "\u00a0", "\u3000", "\u200b", "!", "?", "_", "@"]
_ALPHABET = st.sampled_from(_PIECES)
_TEXTS = st.lists(st.lists(_ALPHABET, max_size=30).map("".join), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXTS)
def test_column_wise_fast_paths_equal_the_per_text_functions(texts: list[str]) -> None:
    assert normalise_texts(texts) == [normalise_text(t) for t in texts]
    assert alnum_ratios(texts).tolist() == [alnum_ratio(t) for t in texts]
    normalised = [normalise_text(t) for t in texts]
    assert fast_languages(normalised) == [fast_language(t[:400]) for t in normalised]
    for text in normalised:
        if text.isascii():
            assert _key_of_core(ascii_alnum_core(text)) == dedup_key(text)


def test_short_english_rows_with_symbols_are_not_dropped_as_another_language() -> None:
    """Issue 12: "77.0°F" sent the row to the detector, which called it German."""
    rows = [
        {"instruction": "Convert 25°C to Fahrenheit.", "output": "77.0°F"},
        {
            "instruction": "Convert the temperature from Celsius to Fahrenheit.",
            "input": "25°C",
            "output": "77.0°F",
        },
        {"instruction": "Convert 25 degrees Celsius to Fahrenheit.", "output": "77.0°F"},
        {"instruction": "Wie viele Tage hat eine Woche?", "output": "Eine Woche hat sieben Tage."},
        {"instruction": "¿Cuál es la capital de Chile?", "output": "La capital es Santiago."},
    ]
    result = clean(rows, near_dedup={"enabled": False})
    assert result.kept["lang"].tolist() == ["en", "en", "en"]
    assert result.quarantine["reason"].tolist() == ["language", "language"]
    assert result.quarantine["detail"].tolist() == ["de", "es"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "the", "x"]), max_size=40),
    st.sampled_from([0.0, 0.2, 0.5, 0.8]),
)
def test_bigram_bound_never_hides_a_repetitive_row(tokens: list[str], limit: float) -> None:
    from sftops.data.normalise import _may_repeat, _repetition
    from sftops.text import word_shingles

    if len(tokens) > 2 and not _may_repeat(len(tokens), len(word_shingles(tokens, 2)), limit):
        assert _repetition(tokens) <= limit


def test_full_texts_equal_join_text_of_each_row() -> None:
    from sftops.data.clean import _full_texts
    from sftops.rowkeys import join_text

    history = json.dumps([["u1", ""], ["", "a2"]])
    rows = [
        ("", "[]", "i", "", "o"),
        ("sys", history, "", "x", ""),
        ("", history, "i", "in", "o"),
        ("", "[]", "", "", ""),
    ]
    names = ("system", "history", "instruction", "input", "output")
    columns = {name: [row[k] for row in rows] for k, name in enumerate(names)}
    assert _full_texts(columns) == [join_text(*row) for row in rows]
