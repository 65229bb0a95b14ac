"""Fuzzing ingest + clean with hypothesis: no exception escapes, no row is lost.

Two input families: raw bytes (random, and valid files with bytes spliced in) under every
suffix, and JSON-shaped records (Alpaca, ShareGPT, OpenAI, tool calls, content parts, junk)
written as JSON Lines, a JSON array or CSV. The default run is bounded and derandomised
(same examples every run); ``-m slow`` runs many more.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftops.config import CleanParams, IngestParams, SourceParams
from sftops.data.clean import clean_table
from sftops.data.ingest import ingest_sources
from sftops.errors import SftopsError
from sftops.schemas import CanonicalRows

FAST = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
THOROUGH = settings(FAST, max_examples=1500, derandomize=False)
CLEAN = CleanParams(near_dedup={"enabled": True})

# -- strategies ------------------------------------------------------------------------------

text = st.text(
    alphabet=st.one_of(
        st.characters(), st.characters(categories=["Cs"]), st.sampled_from("\n\r\t\x00\ufeff")
    ),
    max_size=30,
)
leaf = st.none() | st.booleans() | st.integers() | st.floats() | text
json_value = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(
    [
        "user",
        "human",
        "assistant",
        "gpt",
        "system",
        "tool",
        "function_call",
        "observation",
        "function",
        "model",
        "narrator",
        "USER",
        "",
    ]
)
part = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["text", "image_url", "input_audio"]),
        "text": text | json_value,
        "value": text,
    },
)
content = text | st.lists(text | part, max_size=3) | json_value
call = (
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {},
                optional={
                    "name": text | json_value,
                    "arguments": text | json_value | st.just('{"a": 1}'),
                },
            ),
        }
    )
    | st.just('{"name": "f", "arguments": {"x": 1}}')
    | json_value
)
turn = st.fixed_dictionaries(
    {},
    optional={
        "role": roles,
        "from": roles,
        "content": content,
        "value": content,
        "tool_calls": st.lists(call, max_size=2),
        "function_call": call,
        "name": text,
    },
)
tools = st.none() | st.just('[{"name": "f", "parameters": {}}]') | json_value
record = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            k: text | json_value
            for k in ("instruction", "input", "output", "system", "label", "prompt", "response")
        },
    ),
    st.fixed_dictionaries(
        {"conversations": st.lists(turn, max_size=6) | json_value}, optional={"tools": tools}
    ),
    st.fixed_dictionaries(
        {"messages": st.lists(turn, max_size=6) | json_value}, optional={"tools": tools}
    ),
)
words = st.text(alphabet=st.characters(categories=["L", "N", "Zs", "P"]), min_size=1, max_size=40)
valid = st.one_of(  # records that should survive ingest, so clean sees rows too
    st.fixed_dictionaries({"instruction": words, "output": words}, optional={"label": leaf}),
    st.builds(
        lambda q, a, obs: {
            "conversations": [
                {"from": "human", "value": q},
                {"from": "function_call", "value": '{"name": "f", "arguments": {"q": 1}}'},
                {"from": "observation", "value": obs},
                {"from": "gpt", "value": a},
            ],
            "tools": '[{"name": "f", "parameters": {}}]',
        },
        words,
        words,
        words,
    ),
    st.builds(
        lambda q, a: {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": q}]},
                {"role": "assistant", "content": a},
            ]
        },
        words,
        words,
    ),
)
records = st.lists(valid | record | json_value, min_size=1, max_size=8).filter(
    lambda rs: isinstance(rs[0], dict)
)

_ALPACA = (
    b'{"instruction": "What is 2+2?", "output": "4"}\n'
    b'{"instruction": "\xe4\xbd\xa0\xe5\xa5\xbd", "output": "Hi"}\n'
)
_BASES = [
    b"",
    _ALPACA,
    b'[{"instruction": "Q", "output": "A"}]',
    b'instruction,output\nQ1,A1\n"Q2\nx",A2\n',
    b'{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}\n',
    b'{"data": [{"instruction": "Q", "output": "A"}]}',
    codecs.BOM_UTF8 + _ALPACA,
    codecs.BOM_UTF16_LE + _ALPACA.decode().encode("utf-16-le"),
    _ALPACA.decode().encode("utf-16-be"),
    "instruction,output\n中国,北京\n".encode("gbk"),
]
spliced = st.tuples(
    st.sampled_from(_BASES), st.integers(0, 200), st.integers(0, 20), st.binary(max_size=24)
).map(lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2] :])
raw_bytes = st.binary(max_size=400) | spliced
suffixes = st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ""])

# -- helpers ---------------------------------------------------------------------------------


def _run(data: bytes, suffix: str, **source: Any) -> tuple[int, pd.DataFrame] | None:
    """Ingest + clean one file; None when ingest refused it with a one-line SftopsError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            result = ingest_sources(IngestParams(sources=[SourceParams(path=str(path), **source)]))
        except SftopsError as err:
            message = str(err)
            assert "\n" not in message and message.startswith(str(path)), message
            return None
    read = result.summary()["rows_read"]
    assert len(result.table) + len(result.quarantine) == read  # nothing lost at ingest
    CanonicalRows.validate(result.table)
    cleaned = clean_table(result.table, CLEAN)
    assert len(cleaned.kept) + len(cleaned.quarantine) == len(result.table)  # nor at clean
    return read, result.table


def _dump(value: Any) -> str:
    line = json.dumps(value, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # unpaired surrogates only travel as \u escapes
        line = json.dumps(value)
    return line


def _encode(records_: list[Any], container: str) -> bytes:
    if container == "jsonl":
        return "".join(_dump(r) + "\n" for r in records_).encode()
    if container == "json":
        return _dump(records_).encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["instruction", "output", "label"])
    for r in records_:
        r = r if isinstance(r, dict) else {"instruction": r}
        writer.writerow(
            v if isinstance(v, str) else _dump(v)
            for v in (r.get("instruction"), r.get("output"), r.get("label"))
        )
    return buffer.getvalue().encode("utf-8", "backslashreplace")


def _refusal_allowed(records_: list[Any], container: str, message: str) -> bool:
    """A well-formed file is refused only when it is one object wrapping a list (or dict)."""
    first = records_[0]
    wrapper = not {
        "conversations",
        "messages",
        "instruction",
        "prompt",
        "output",
        "response",
    } & set(first) and any(isinstance(v, list | dict) for v in first.values())
    return (
        container == "jsonl"
        and len(records_) == 1
        and wrapper
        and "top-level JSON object" in message
    )


# -- tests -----------------------------------------------------------------------------------


@FAST
@given(data=raw_bytes, suffix=suffixes)
def test_any_bytes_give_rows_or_one_line_error(data: bytes, suffix: str) -> None:
    _run(data, suffix)


@FAST
@given(records_=records, container=st.sampled_from(["jsonl", "json", "csv"]))
def test_json_shaped_records_are_all_accounted_for(records_: list[Any], container: str) -> None:
    data = _encode(records_, container)
    suffix = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv"}[container]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            ingest_sources(IngestParams(sources=[SourceParams(path=str(path))]))
        except SftopsError as err:
            assert _refusal_allowed(records_, container, str(err)), str(err)
            return
    outcome = _run(data, suffix)
    assert outcome is not None
    read, _ = outcome
    assert read == len(records_)  # every record was seen: kept or quarantined


@pytest.mark.slow
@THOROUGH
@given(data=raw_bytes, suffix=suffixes)
def test_any_bytes_thorough(data: bytes, suffix: str) -> None:
    _run(data, suffix)


@pytest.mark.slow
@THOROUGH
@given(records_=records, container=st.sampled_from(["jsonl", "json", "csv"]))
def test_json_shaped_thorough(records_: list[Any], container: str) -> None:
    test_json_shaped_records_are_all_accounted_for.hypothesis.inner_test(records_, container)  # type: ignore[attr-defined]
