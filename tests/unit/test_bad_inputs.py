"""The bad-input corpus: every file's outcome (kept / quarantined counts, or a one-line error)
is one row of tests/assets/bad_inputs/expected.csv; no row is ever lost."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sftops.config import CleanParams, IngestParams, SourceParams
from sftops.data.clean import clean_table
from sftops.data.ingest import ingest_sources
from sftops.errors import SftopsError
from sftops.schemas import CanonicalRows

CORPUS = Path(__file__).parents[1] / "assets" / "bad_inputs"
CASES = list(csv.DictReader((CORPUS / "expected.csv").open(encoding="utf-8")))


def _ingest(case: dict[str, str]) -> Any:
    options = json.loads(case["options"] or "{}")
    limit = options.pop("max_field_chars", 200_000)
    source = SourceParams(path=str(CORPUS / case["file"]), **options)
    return ingest_sources(IngestParams(sources=[source], max_field_chars=limit))


def test_the_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name not in {"expected.csv", "make_corpus.py"}}
    assert files == {c["file"] for c in CASES}  # every file has an expected outcome
    assert len(files) >= 40


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c['file']}{'+' + c['options'] if c['options'] else ''}" for c in CASES]
)
def test_bad_input(case: dict[str, str]) -> None:
    if case["error"]:
        with pytest.raises(SftopsError) as info:
            _ingest(case)
        message = str(info.value)
        assert case["error"] in message and "\n" not in message
        assert message.startswith(str(CORPUS / case["file"]))  # names the file
        return
    result = _ingest(case)
    summary = result.summary()["sources"][0]
    kept, quarantined = len(result.table), len(result.quarantine)
    assert (summary["read"], kept, quarantined) == (
        int(case["rows"]),
        int(case["kept"]),
        int(case["quarantined"]),
    )
    assert kept + quarantined == int(case["rows"])  # no row lost
    assert (summary["format"], summary["encoding"]) == (case["format"], case["encoding"])
    assert all(q["reason"] and isinstance(q["line"], int) for q in result.quarantine)
    CanonicalRows.validate(result.table)


def test_rows_kept_by_ingest_are_conserved_by_clean() -> None:
    tables = [_ingest(c).table for c in CASES if not c["error"]]
    table = pd.concat(tables, ignore_index=True)
    result = clean_table(table, CleanParams(near_dedup={"enabled": False}))
    assert len(result.kept) + len(result.quarantine) == len(table)
