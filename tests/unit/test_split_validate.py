from __future__ import annotations

import pandas as pd
import pytest

from sftops.config import CleanParams, SplitParams, ValidateParams
from sftops.data.clean import clean_table
from sftops.data.split import split_summary, split_table
from sftops.data.validate import validate_table
from tests.helpers import canonical_table


def cleaned(n: int, **clean_overrides: object) -> pd.DataFrame:
    rows = [
        {"instruction": f"Question number {i} about topic {i * 7 % 13}", "output": f"Answer {i}."}
        for i in range(n)
    ]
    return clean_table(canonical_table(rows), CleanParams(**clean_overrides)).kept


def test_split_is_deterministic_and_independent_of_row_order() -> None:
    table = cleaned(300)
    first = split_table(table, SplitParams())
    shuffled = split_table(table.sample(frac=1, random_state=7), SplitParams())
    pd.testing.assert_frame_equal(first, shuffled)


def test_split_fractions_are_roughly_respected_and_salt_changes_the_draw() -> None:
    table = cleaned(2000, near_dedup={"enabled": False})
    counts = split_table(table, SplitParams(validation=0.1, test=0.2))["split"].value_counts()
    assert counts["test"] == pytest.approx(400, abs=60)
    assert counts["validation"] == pytest.approx(200, abs=45)
    salted = split_table(table, SplitParams(validation=0.1, test=0.2, salt="other"))
    assert not salted["split"].equals(
        split_table(table, SplitParams(validation=0.1, test=0.2))["split"]
    )


def test_near_duplicate_clusters_never_cross_splits() -> None:
    base = "Describe how a rainbow forms after the rain in the afternoon for class number"
    rows = []
    for i in range(60):
        rows.append({"instruction": f"{base} {i} today", "output": f"Light refracts in drops {i}."})
        rows.append(
            {"instruction": f"{base} {i} today please", "output": f"Light refracts in drops {i}."}
        )
    kept = clean_table(canonical_table(rows), CleanParams(near_dedup={"drop": False})).kept
    assert kept["cluster_id"].nunique() < len(kept)  # clusters exist
    split = split_table(kept, SplitParams(validation=0.3, test=0.3))
    assert split_summary(split)["clusters_crossing_splits"] == 0
    assert (split.groupby("cluster_id")["split"].nunique() == 1).all()


def test_validate_quarantines_failing_rows_with_the_check_name() -> None:
    table = cleaned(20)
    table.loc[3, "label"] = "maybe"
    table.loc[5, "lang"] = "fr"
    table.loc[7, "history"] = "not json"
    result = validate_table(table, ValidateParams(labels=["positive", "negative"]), ["en", "zh"])
    assert len(result.valid) == 17
    reasons = dict(zip(result.quarantine["row_id"], result.quarantine["reason"], strict=True))
    assert reasons[table.loc[3, "row_id"]] == "label:label_allowed"
    assert reasons[table.loc[5, "row_id"]] == "lang:lang_allowed"
    assert reasons[table.loc[7, "row_id"]] == "history:history_is_list_of_turn_pairs"
    assert result.invalid_fraction == pytest.approx(3 / 20)


def test_validate_flags_duplicate_ids_and_empty_answers() -> None:
    table = cleaned(5)
    table.loc[1, "output"] = ""
    table = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    result = validate_table(table, ValidateParams(), ["en"])
    assert set(result.quarantine["reason"]) == {
        "row_id:field_uniqueness",
        "output:str_length(1, None)",
    }
    assert len(result.valid) + len(result.quarantine) == len(table)


def test_validate_reports_a_missing_column_as_a_table_error() -> None:
    result = validate_table(cleaned(5).drop(columns="cluster_id"), ValidateParams(), ["en"])
    assert any("cluster_id" in e for e in result.table_errors)


def test_assign_splits_equals_assign_split_of_each_cluster() -> None:
    import random

    from sftops.data.split import assign_split, assign_splits

    rng = random.Random(0)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(5000)] + ["", "你好", "a:b"]
    for test, validation in [(0.1, 0.1), (0.0, 0.0), (0.5, 0.4), (0.3333333, 0.2)]:
        cfg = SplitParams(test=test, validation=validation)
        assert assign_splits(ids, cfg).tolist() == [assign_split(c, cfg) for c in ids]
    assert assign_splits([], SplitParams()).tolist() == []
