from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sftops.config import IngestParams, SourceParams
from sftops.data.ingest import (
    CANONICAL_COLUMNS,
    RowRejected,
    content_hash,
    ingest_sources,
    to_canonical,
)
from sftops.errors import InputDataError
from sftops.io import detect_format

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
        ("latin1.jsonl", '{"instruction": "caf\xe9"}'.encode("latin-1") * 3, "not UTF-8"),
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


def test_non_utf8_line_in_the_middle_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = json.dumps(ALPACA[0]).encode()
    path.write_bytes(good + b"\n" + b'{"instruction": "caf\xe9", "output": "x"}\n' + good + b"\n")
    table, quarantine = ingest_one(path)
    assert len(table) == 2 and quarantine[0]["line"] == 2
    assert quarantine[0]["reason"].startswith("not UTF-8")
