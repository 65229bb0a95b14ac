"""Data tests on the bundled sample: every planted defect is caught, nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sftops.config import Params
from sftops.io import read_jsonl

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_all(data_stages: tuple[Params, dict[str, dict]]) -> tuple[Params, dict[str, dict]]:
    """The data stages of the whole sample, run once per session (tests/conftest.py)."""
    return data_stages


def test_rows_are_conserved_across_stages(run_all) -> None:
    params, s = run_all
    assert (
        s["ingest"]["rows_read"] == s["ingest"]["rows_ingested"] + s["ingest"]["rows_quarantined"]
    )
    assert s["clean"]["rows_in"] == s["ingest"]["rows_ingested"]
    assert s["clean"]["rows_in"] == s["clean"]["rows_kept"] + s["clean"]["rows_quarantined"]
    assert s["validate"]["rows_in"] == s["clean"]["rows_kept"]
    assert s["split"]["rows"] == s["validate"]["rows_valid"]
    assert len(read_jsonl(params.paths.quarantine("clean"))) == s["clean"]["rows_quarantined"]


def test_planted_defects_are_caught(run_all) -> None:
    params, s = run_all
    planted = json.loads((ROOT / "data/sample/DEFECTS.json").read_text())
    ingest_reasons = [q["reason"] for q in read_jsonl(params.paths.quarantine("ingest"))]
    assert sum(r.startswith("malformed JSON") for r in ingest_reasons) == planted["malformed_json"]
    assert (
        sum("must be text" in r or "null" in r for r in ingest_reasons) >= planted["wrong_type"] - 2
    )
    dropped = s["clean"]["quarantined_by_reason"]
    assert dropped["empty_output"] >= planted["empty_output"]
    assert dropped["empty_instruction"] >= planted["empty_instruction"]
    assert dropped["language"] >= planted["foreign_language"]
    assert dropped["too_long"] >= planted["over_long"]
    assert dropped["exact_duplicate"] + dropped["near_duplicate"] >= (
        planted["exact_duplicate"] + planted["near_duplicate"]
    )
    assert (
        sum(v for k, v in s["clean"]["modified"].items() if k.startswith("pii_")) >= planted["pii"]
    )


def test_clean_output_has_no_markup_control_chars_or_pii(run_all) -> None:
    params, _ = run_all
    kept = pd.read_parquet(params.paths.validated)
    text = "\n".join(kept["instruction"] + "\n" + kept["input"] + "\n" + kept["output"])
    assert "<p>" not in text and "<br" not in text and "&amp;" not in text
    assert not any(c in text for c in "\x00\x07\x1b\u200b\r")
    assert "@example.com" not in text and "4111 1111 1111 1111" not in text
    # Code blocks keep their angle brackets.
    code = kept[kept["output"].str.contains("```")]
    assert len(code) and code["output"].str.contains("<").any()


def test_each_split_has_both_languages_and_valid_labels(run_all) -> None:
    params, s = run_all
    for name in ("train", "validation", "test"):
        part = pd.read_parquet(params.paths.split(name))
        assert set(part["lang"]) >= {"en", "zh"}, name
        labels = part["label"].dropna()
        assert set(labels) <= set(params.validate_.labels)
    assert s["split"]["clusters_crossing_splits"] == 0
    assert s["split"]["rows_by_split"]["train"] > 800
