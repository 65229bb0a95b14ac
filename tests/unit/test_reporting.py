from __future__ import annotations

import pytest

from sftops.cli import DATA_STAGE_HELP
from sftops.errors import SftopsError
from sftops.mlops.pipeline import DATA_STAGES
from sftops.reporting import DATA_VIEWS, RunSummary

SUMMARIES = {
    "ingest": {"rows_read": 10, "rows_ingested": 9, "rows_quarantined": 1, "sources": []},
    "clean": {"rows_in": 9, "rows_kept": 7, "rows_quarantined": 2},
    "validate": {"rows_in": 7, "rows_valid": 7, "rows_quarantined": 0},
    "split": {"rows": 7, "rows_by_split": {"train": 5, "validation": 1, "test": 1}},
    "augment": {
        "rows_original": 5,
        "rows_out": 8,
        "rows_added": 3,
        "methods": {"synonym": {"rejected_by_reason": {"similarity": 2, "fluency": 1}}},
    },
    "train": {
        "encoding": {"rows": 8, "dropped_no_answer": 0},
        "base_val_loss": 2.5,
        "best_val_loss": 1.25,
        "steps": 4,
        "tokens_per_second": 99.0,
    },
    "evaluate": {"test_rows": 1, "models": {"base": {"token_f1": 0.25}}},
    "register": {"model_name": "m", "version": "3", "already_registered": True, "run_id": None},
}


def test_every_data_stage_has_a_command_and_a_view() -> None:
    assert tuple(DATA_STAGE_HELP) == DATA_STAGES == tuple(DATA_VIEWS)


def test_the_run_table_shows_each_stage_in_order() -> None:
    lines = RunSummary.of(SUMMARIES).lines()
    assert [(x.stage, x.rows_in, x.rows_out, x.set_aside) for x in lines] == [
        ("ingest", "10", "9", "1"),
        ("clean", "9", "7", "2"),
        ("validate", "7", "7", "0"),
        ("split", "7", "train 5, validation 1, test 1", "0"),
        ("augment", "5", "train_aug 8 (+3)", "3"),
        ("train", "8 rows", "val loss 2.500 -> 1.250 (4 steps)", "0"),
        ("evaluate", "1", "base F1 0.250", "-"),
        ("register", "-", "unchanged: already m v3", "-"),
    ]


def test_a_renamed_key_names_the_stage() -> None:
    broken = {**SUMMARIES, "clean": {"rows_in": 9, "kept": 7, "rows_quarantined": 2}}
    with pytest.raises(SftopsError, match="clean summary has no 'rows_kept'"):
        RunSummary.of(broken)
