from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from sftops.config import IngestParams, SourceParams
from sftops.data.canonical import CANONICAL_COLUMNS, RowRejected, to_canonical
from sftops.data.ingest import ingest_sources
from sftops.errors import InputDataError
from sftops.io.detect import detect_format
from sftops.rowkeys import content_hash

ALPACA = [
    {"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
    {"instruction": "翻译成中文", "input": "hello", "output": "你好"},
]


def ingest_one(path: Path, **kwargs: object) -> tuple[pd.DataFrame, list[dict]]:
    result = ingest_sources(IngestParams(sources=[SourceParams(path=str(path), **kwargs)]))
    return result.table, result.quarantine


def test_alpaca_json_array_becomes_canonical_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(ALPACA))
    table, quarantine = ingest_one(path)
    assert list(table.columns) == CANONICAL_COLUMNS
    assert table["instruction"].tolist() == ["What is the capital of France?", "翻译成中文"]
    assert table["source"].tolist() == ["a", "a"]
    assert table["lang"].tolist() == ["en", "zh"]
    assert table["history"].tolist() == ["[]", "[]"]
    assert quarantine == []


def test_jsonl_malformed_line_in_the_middle_is_quarantined_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    lines = [json.dumps(ALPACA[0]), '{"instruction": "broken", ', json.dumps(ALPACA[1])]
    path.write_text("\n".join(lines) + "\n")
    table, quarantine = ingest_one(path)
    assert len(table) == 2
    assert [(q["line"], q["reason"].split(" (")[0]) for q in quarantine] == [(2, "malformed JSON")]
    assert quarantine[0]["record"] == '{"instruction": "broken", '


def test_sharegpt_multi_turn_keeps_earlier_turns_as_history() -> None:
    record = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello!"},
            {"from": "human", "value": "2+2?"},
            {"from": "gpt", "value": "4"},
        ]
    }
    row = to_canonical(record, "chat", {}, 1000)
    assert (row["system"], row["instruction"], row["output"]) == ("Be brief.", "2+2?", "4")
    assert json.loads(row["history"]) == [["Hi", "Hello!"]]


def test_openai_messages_are_read_like_sharegpt() -> None:
    record = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    row = to_canonical(record, "s", {}, 1000)
    assert (row["instruction"], row["output"], row["history"]) == ("Q", "A", "[]")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"instruction": "x", "output": ["a", "b"]}, "field 'output' must be text, got list"),
        ({"instruction": {"x": 1}, "output": "y"}, "field 'instruction' must be text, got dict"),
        ({"instruction": "x", "output": None}, "field 'output' is missing or null"),
        ({"instruction": "x", "output": True}, "field 'output' must be text, got bool"),
        ({"messages": [{"role": "user", "content": "Q"}]}, "'messages' does not end with an"),
        ("just a string", "record must be an object, got str"),
    ],
)
def test_wrong_types_are_rejected_with_the_field_named(record: object, reason: str) -> None:
    with pytest.raises(RowRejected, match=reason):
        to_canonical(record, "s", {}, 1000)


def test_numbers_are_kept_as_text() -> None:
    row = to_canonical({"instruction": "1+1", "input": 42, "output": 2}, "s", {}, 1000)
    assert (row["input"], row["output"]) == ("42", "2")


def test_field_over_the_limit_is_rejected() -> None:
    with pytest.raises(RowRejected, match="field 'output' has 11 chars"):
        to_canonical({"instruction": "x", "output": "y" * 11}, "s", {}, 10)


def test_column_mapping_and_aliases(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    pd.DataFrame({"q": ["Why?"], "a": ["Because."], "context": ["ctx"]}).to_csv(path, index=False)
    table, _ = ingest_one(path, columns={"instruction": "q", "output": "a"})
    assert table.loc[0, ["instruction", "input", "output"]].tolist() == ["Why?", "ctx", "Because."]


def test_csv_row_with_wrong_field_count_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('instruction,output\n"Q1","A1"\n"Q2","A2","extra"\n"Q3","A3"\n')
    table, quarantine = ingest_one(path)
    assert table["instruction"].tolist() == ["Q1", "Q3"]
    assert quarantine[0]["line"] == 3 and "expected 2 fields, found 3" in quarantine[0]["reason"]


def test_parquet_and_saved_datasets_folder(tmp_path: Path) -> None:
    import datasets

    frame = pd.DataFrame(ALPACA)
    frame.to_parquet(tmp_path / "e.parquet")
    datasets.Dataset.from_pandas(frame).save_to_disk(str(tmp_path / "hf"))
    assert detect_format(tmp_path / "hf") == "hf_dataset"
    from_parquet, _ = ingest_one(tmp_path / "e.parquet")
    from_hf, _ = ingest_one(tmp_path / "hf")
    assert from_parquet["row_id"].tolist() == from_hf["row_id"].tolist()
    assert len(from_hf) == 2


def test_row_id_is_a_content_hash_independent_of_source(tmp_path: Path) -> None:
    row_a = to_canonical(ALPACA[0], "a", {}, 1000)
    row_b = to_canonical(ALPACA[0], "b", {}, 1000)
    assert (
        row_a["row_id"]
        == row_b["row_id"]
        == content_hash("", "[]", ALPACA[0]["instruction"], "", ALPACA[0]["output"])
    )


def test_mixture_weight_keeps_a_deterministic_fraction_and_quarantines_the_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.jsonl"
    rows = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(400)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    first, dropped = ingest_one(path, weight=0.25)
    again, _ = ingest_one(path, weight=0.25)
    assert first["row_id"].tolist() == again["row_id"].tolist()
    assert 70 <= len(first) <= 130
    assert len(first) + len(dropped) == 400
    assert all("mixture weight" in q["reason"] for q in dropped)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "file not found"),
        ("empty.jsonl", b"", "file is empty"),
        ("binary.jsonl", b"\x00\x01\x02{}", "looks binary"),
        ("notes.txt", b"hello there", "cannot detect the format"),
        ("array.json", b'[{"instruction": "a", ', "malformed JSON"),
    ],
)
def test_unreadable_files_give_one_line_naming_the_file(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputDataError) as info:
        ingest_one(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_ten_megabyte_single_line_is_quarantined_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    huge = json.dumps({"instruction": "x", "output": "y" * 10_000_000})
    path.write_text(json.dumps(ALPACA[0]) + "\n" + huge + "\n")
    table, quarantine = ingest_one(path)
    assert len(table) == 1
    assert quarantine[0]["line"] == 2 and "max_field_chars" in quarantine[0]["reason"]


def test_non_utf8_line_in_a_utf8_file_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = json.dumps(ALPACA[1], ensure_ascii=False).encode()  # real UTF-8 multi-byte text
    path.write_bytes(good + b"\n" + b'{"instruction": "caf\xe9", "output": "x"}\n' + good + b"\n")
    table, quarantine = ingest_one(path)
    assert len(table) == 2 and quarantine[0]["line"] == 2
    assert quarantine[0]["reason"].startswith("not UTF-8")


# -- formats -----------------------------------------------------------------------------------


def summary_of(path: Path, **kwargs: object) -> dict:
    result = ingest_sources(IngestParams(sources=[SourceParams(path=str(path), **kwargs)]))
    return result.summary()["sources"][0]


def test_content_part_lists_are_joined_and_images_quarantined(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Describe"}, "briefly"]},
                {"role": "assistant", "content": [{"type": "text", "value": "Short."}]},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": "A cat."},
            ]
        },
    ]
    path = tmp_path / "parts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    table, quarantine = ingest_one(path)
    assert table[["instruction", "output"]].values.tolist() == [["Describe\nbriefly", "Short."]]
    assert [q["line"] for q in quarantine] == [2]
    assert "non-text content part 'image_url'" in quarantine[0]["reason"]


def test_sharegpt_tool_conversation_keeps_tools_and_tool_turns() -> None:
    record = {
        "conversations": [
            {"from": "human", "value": "Weather in Oslo?"},
            {
                "from": "function_call",
                "value": '{"name": "weather", "arguments": {"city": "Oslo"}}',
            },
            {"from": "observation", "value": "3C"},
            {"from": "gpt", "value": "It is 3C."},
        ],
        "tools": '[{"name": "weather", "parameters": {"type": "object"}}]',
    }
    row = to_canonical(record, "s", {}, 10_000)
    assert (row["instruction"], row["output"], row["history"]) == (
        "Weather in Oslo?",
        "It is 3C.",
        "[]",
    )
    assert json.loads(row["tools"]) == [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    ]
    assert json.loads(row["tool_turns"]) == [
        {
            "turn": 0,
            "messages": [
                {
                    "role": "tool_call",
                    "content": "",
                    "calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
                },
                {"role": "observation", "content": "3C"},
            ],
        }
    ]
    plain = to_canonical(
        {"conversations": [*record["conversations"][:1], {"from": "gpt", "value": "It is 3C."}]},
        "s",
        {},
        10_000,
    )
    assert plain["row_id"] != row["row_id"]  # the tool turns are part of the content


def test_openai_tool_calls_parallel_and_legacy_function_call() -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Oslo and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"c": "Oslo"}'},
                    },
                    {
                        "id": "b",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"c": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "3C"},
            {"role": "tool", "tool_call_id": "b", "content": "20C"},
            {"role": "assistant", "content": "3C and 20C."},
        ],
        "tools": [{"type": "function", "function": {"name": "w"}}],
    }
    row = to_canonical(record, "s", {}, 10_000)
    (segment,) = json.loads(row["tool_turns"])
    assert [m["role"] for m in segment["messages"]] == ["tool_call", "observation", "observation"]
    assert [c["arguments"] for c in segment["messages"][0]["calls"]] == [
        {"c": "Oslo"},
        {"c": "Rome"},
    ]
    legacy = {
        "messages": [
            {"role": "user", "content": "Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "w", "arguments": "{}"},
            },
            {"role": "function", "name": "w", "content": "3C"},
            {"role": "assistant", "content": "3C."},
        ]
    }
    (segment,) = json.loads(to_canonical(legacy, "s", {}, 10_000)["tool_turns"])
    assert segment["messages"][1] == {"role": "observation", "content": "3C", "name": "w"}


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        (
            [("human", "q"), ("observation", "x"), ("gpt", "a")],
            "turn 1 of 'conversations': unexpected role 'observation'",
        ),
        (
            [("human", "q"), ("function_call", "not json"), ("observation", "x"), ("gpt", "a")],
            "is not valid JSON",
        ),
        (
            [
                ("human", "q"),
                ("function_call", '{"arguments": {}}'),
                ("observation", "x"),
                ("gpt", "a"),
            ],
            "needs a 'name'",
        ),
        (
            [("human", "q"), ("function_call", '{"name": "f"}'), ("gpt", "a")],
            "unexpected role 'gpt'",
        ),
        ([("human", "q"), ("wizard", "a")], "unexpected role 'wizard'"),
    ],
)
def test_broken_tool_conversations_are_rejected_with_the_turn(turns: list, reason: str) -> None:
    record = {"conversations": [{"from": r, "value": v} for r, v in turns]}
    with pytest.raises(RowRejected, match=reason):
        to_canonical(record, "s", {}, 1000)


@pytest.mark.parametrize(
    ("label", "text"),
    [
        (True, "true"),
        (False, "false"),
        (4, "4"),
        (4.0, "4"),
        (2.5, "2.5"),
        ("positive", "positive"),
        (None, None),
    ],
)
def test_non_text_labels_are_kept_as_text(label: object, text: str | None) -> None:
    row = to_canonical({"instruction": "Rate it", "output": "ok", "label": label}, "s", {}, 1000)
    assert row["label"] == text


def test_format_name_says_what_was_detected(tmp_path: Path) -> None:
    conversations = [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    ]
    (tmp_path / "chat.json").write_text(json.dumps(conversations))
    (tmp_path / "msgs.jsonl").write_text(
        json.dumps(
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
        )
    )
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps(ALPACA[0]) + "\n" + json.dumps(conversations[0])
    )
    pd.DataFrame(ALPACA).to_csv(tmp_path / "rows.csv", index=False)
    found = {
        p: summary_of(tmp_path / p)["format"]
        for p in ("chat.json", "msgs.jsonl", "mixed.jsonl", "rows.csv")
    }
    assert found == {
        "chat.json": "sharegpt_json",
        "msgs.jsonl": "openai_jsonl",
        "mixed.jsonl": "mixed_jsonl",
        "rows.csv": "alpaca_csv",
    }
    assert summary_of(tmp_path / "mixed.jsonl")["record_kinds"] == {"alpaca": 1, "sharegpt": 1}


def test_object_with_a_list_field_needs_field_setting(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 2, "data": ALPACA}, indent=2))
    with pytest.raises(InputDataError, match=r"keys 'version', 'data'.*set `field: data`"):
        ingest_one(path)
    table, _ = ingest_one(path, field="data")
    assert table["instruction"].tolist() == [r["instruction"] for r in ALPACA]
    one_line = tmp_path / "one_line.jsonl"
    one_line.write_text(json.dumps({"meta": {"rows": ALPACA}}))
    with pytest.raises(InputDataError, match="keys 'meta'"):
        ingest_one(one_line)
    assert len(ingest_one(one_line, field="meta.rows")[0]) == 2
    with pytest.raises(InputDataError, match=r"field 'meta.nope' not found \(keys: 'rows'\)"):
        ingest_one(one_line, field="meta.nope")


def test_parquet_conversations_as_list_of_structs(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"conversations": [[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]]}
    )
    frame.to_parquet(tmp_path / "chat.parquet")
    table, quarantine = ingest_one(tmp_path / "chat.parquet")
    assert table[["instruction", "output"]].values.tolist() == [["Hi", "Hello"]] and not quarantine


# -- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "bom", "reported"),
    [
        ("utf-8", b"\xef\xbb\xbf", "utf-8 (BOM)"),
        ("utf-16-le", b"\xff\xfe", "utf-16-le (BOM)"),
        ("utf-16-be", b"\xfe\xff", "utf-16-be (BOM)"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "utf-32-le (BOM)"),
        ("utf-16-le", b"", "utf-16-le (detected)"),
        ("gb18030", b"", "gb18030 (detected)"),
    ],
)
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_boms_and_legacy_encodings_keep_every_row(
    tmp_path: Path, codec: str, bom: bytes, reported: str, suffix: str
) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        text = "\n".join(json.dumps(r, ensure_ascii=False) for r in ALPACA) + "\n"
    elif suffix == ".json":
        text = json.dumps(ALPACA, ensure_ascii=False)
    else:
        text = pd.DataFrame(ALPACA).to_csv(index=False)
    path.write_bytes(bom + text.encode(codec))
    table, quarantine = ingest_one(path)
    assert quarantine == []
    assert table["instruction"].tolist() == [r["instruction"] for r in ALPACA]
    assert summary_of(path)["encoding"] == reported


def test_latin1_is_detected_and_an_explicit_encoding_is_obeyed(tmp_path: Path) -> None:
    path = tmp_path / "fr.jsonl"
    rows = [{"instruction": "Où est la gare?", "output": "À gauche, très près."}] * 2
    path.write_bytes("\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("latin-1"))
    table, _ = ingest_one(path)
    assert table["output"].tolist() == ["À gauche, très près."] * 2
    assert summary_of(path)["encoding"] == "cp1252 (detected)"
    forced, quarantine = ingest_one(path, encoding="utf-8")
    assert (
        len(forced) == 0 and [q["reason"].split(" (")[0] for q in quarantine] == ["not UTF-8"] * 2
    )
    assert summary_of(path, encoding="latin-1")["encoding"] == "iso8859-1 (setting)"


def test_unknown_encoding_setting_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        SourceParams(path="x.jsonl", encoding="klingon")


def test_deeply_nested_json_is_quarantined_or_refused_never_a_traceback(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(ALPACA[0]) + "\n" + '{"instruction": ' + deep + "}\n")
    table, quarantine = ingest_one(path)
    assert len(table) == 1 and quarantine[0]["reason"] == "JSON nested too deeply"
    array = tmp_path / "deep.json"
    array.write_text(deep)
    with pytest.raises(InputDataError, match="JSON nested too deeply"):
        ingest_one(array)


def test_plain_alpaca_fast_path_gives_the_general_path_row() -> None:
    """Ingest's shortcut for text-only instruction/input/output records must make exactly the
    row (row_id included) the field-by-field path makes, and leave every other record to it."""
    from sftops.data.canonical import _canonical_row, _plain_alpaca_row

    rng = random.Random(0)
    alphabet = [*'ab Z"\\/\n\t\r\x00\x1f\x7f', "é", "你", "\u2028", "😀", "\xa0", "<", "\ud800"]
    fast_rows = 0
    for _ in range(3000):
        keys = ["instruction", "output"] + (["input"] if rng.random() < 0.5 else [])
        if rng.random() < 0.1:
            keys.append(rng.choice(["system", "label", "task", "tools", "prompt"]))
        record: dict[str, object] = {
            k: "".join(rng.choice(alphabet[:-1]) for _ in range(rng.randint(0, 12))) for k in keys
        }
        if rng.random() < 0.05:
            record[rng.choice(keys)] = rng.choice([None, 3, 2.5, True, [], "x\ud800"])
        limit = rng.choice([1, 2, 5, 1000, 1000])
        fast = _plain_alpaca_row(record, "src", limit)
        try:
            general = _canonical_row(record, "src", {}, limit)
        except RowRejected:
            general = None
        if fast is not None:
            fast_rows += 1
            assert fast == general, record
        elif general is not None:  # left to the general path: other keys or non-text values
            others = set(record) - {"instruction", "input", "output"}
            assert others or any(type(v) is not str for v in record.values()), record
    assert fast_rows > 1000
