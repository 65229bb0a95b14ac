"""The worker-process path of ingest and clean gives exactly the in-process result."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import sftops.parallel as parallel_module
from sftops.config import CleanParams, IngestParams, SourceParams
from sftops.data.clean import clean_table
from sftops.data.ingest import ingest_sources

RECORDS = [
    {"instruction": "Explain why the sky is blue.", "output": "Because of Rayleigh scattering."},
    {"instruction": "Explain why the sky is blue!", "output": "Because of  Rayleigh scattering."},
    {"instruction": "解释一下這個問題", "output": "这是一个关于電腦的简单问题，答案很长。"},
    {"instruction": "Mail me", "output": "Write to bob@example.com or call (555) 123-4567."},
    {"instruction": "<p>Use <b>bold</b> text</p>", "output": "Sure &amp; done."},
    {"instruction": "Quelle est la capitale de la France ?", "output": "Paris est la capitale."},
    {"instruction": "x", "output": ""},
    {"instruction": "repeat", "output": "the the the the the the the the the the"},
    {
        "conversations": [
            {"from": "human", "value": "Hi there, how are you today?"},
            {"from": "gpt", "value": "I am fine, thanks for asking."},
            {"from": "human", "value": "What is the capital of Italy?"},
            {"from": "gpt", "value": "The capital of Italy is Rome."},
        ]
    },
    {"instruction": "Summarise the report about the new budget and the market for the team."}
    | {"output": "The report says that the budget for the market is large and the team is new."},
    {"instruction": "Summarise the report about the new budget and the market for the team."}
    | {"output": "The report says that the budget for the market is large and the team is old."},
]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_module, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(parallel_module, "CHUNK_ROWS", 7)


def _write(tmp_path: Path) -> IngestParams:
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in RECORDS * 3]
    lines[4:4] = ["{not json", "", "[1, 2]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return IngestParams(sources=[SourceParams(path=str(path))])


def test_worker_processes_give_the_in_process_result(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _write(tmp_path)
    parallel = ingest_sources(cfg)
    cleaned = clean_table(parallel.table, CleanParams())
    monkeypatch.setattr(parallel_module, "PARALLEL_MIN_ROWS", 10**9)
    serial = ingest_sources(cfg)
    assert_frame_equal(parallel.table, serial.table)
    assert parallel.quarantine == serial.quarantine
    assert parallel.summary() == serial.summary()
    expected = clean_table(serial.table, CleanParams())
    assert_frame_equal(cleaned.kept, expected.kept)
    assert_frame_equal(cleaned.quarantine, expected.quarantine)
    assert list(cleaned.modified.items()) == list(expected.modified.items())
    assert isinstance(cleaned.kept, pd.DataFrame) and len(cleaned.kept) > 0
