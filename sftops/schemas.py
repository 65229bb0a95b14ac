"""pandera schemas for every table that crosses a stage boundary."""

from __future__ import annotations

import json

import pandas as pd
import pandera.pandas as pa
from pandera.typing.pandas import Series

from sftops.config import SplitName

ROW_ID_PATTERN = r"^[0-9a-f]{16}$"
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")


def _is_history(value: str) -> bool:
    try:
        turns = json.loads(value)
    except (TypeError, ValueError):
        return False
    return isinstance(turns, list) and all(
        isinstance(t, list) and len(t) == 2 and all(isinstance(s, str) for s in t) for t in turns
    )


class CanonicalRows(pa.DataFrameModel):
    """The table written by ingest: one row per instruction example, any source."""

    row_id: Series[str] = pa.Field(str_matches=ROW_ID_PATTERN)
    source: Series[str] = pa.Field(str_length={"min_value": 1})
    lang: Series[str] = pa.Field(str_length={"min_value": 2, "max_value": 3})
    task: Series[str]
    system: Series[str]
    history: Series[str]
    instruction: Series[str]
    input: Series[str]
    output: Series[str]
    label: Series[str] = pa.Field(nullable=True)

    @pa.check("history", element_wise=True)
    def history_is_list_of_turn_pairs(cls, value: str) -> bool:
        return value == "[]" or _is_history(value)

    class Config:
        strict = True
        coerce = True


class CleanedRows(CanonicalRows):
    """After clean: unique ids, non-empty instruction and answer, a near-dup cluster id.

    Allowed languages and labels come from params; see :func:`cleaned_schema`.
    """

    row_id: Series[str] = pa.Field(str_matches=ROW_ID_PATTERN, unique=True)
    instruction: Series[str] = pa.Field(str_length={"min_value": 1})
    output: Series[str] = pa.Field(str_length={"min_value": 1})
    cluster_id: Series[str] = pa.Field(str_matches=ROW_ID_PATTERN)


class SplitRows(CleanedRows):
    split: Series[str] = pa.Field(isin=list(SPLITS))


class AugmentedRows(CleanedRows):
    """train_aug: originals (``aug_method == "original"``) plus accepted augmentations."""

    aug_method: Series[str] = pa.Field(str_matches=r"^(original|synonym|backtranslation:\w+)$")
    parent_id: Series[str] = pa.Field(nullable=True, str_matches=ROW_ID_PATTERN)

    @pa.dataframe_check
    def only_augmentations_have_parents(cls, df: pd.DataFrame) -> pd.Series:  # type: ignore[misc]
        return (df["aug_method"] == "original") == df["parent_id"].isna()


def _allowed(name: str, values: list[str]) -> pa.Check:
    allowed = set(values)
    return pa.Check(lambda s: s.isin(allowed), name=name, error=name)


def cleaned_schema(languages: list[str], labels: list[str]) -> pa.DataFrameSchema:
    """CleanedRows plus the params-dependent checks (allowed languages and labels)."""
    schema = CleanedRows.to_schema()
    return schema.update_columns(
        {
            "lang": {"checks": [_allowed("lang_allowed", [*languages, "und"])]},
            "label": {
                "checks": [_allowed("label_allowed", labels)],
                "nullable": True,
            },
        }
    )


def failing_rows(
    schema: pa.DataFrameSchema, df: pd.DataFrame
) -> tuple[dict[int, list[str]], list[str]]:
    """Validate lazily; return {row index: failed checks} and table-level failures."""
    try:
        schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        by_row: dict[int, list[str]] = {}
        table_level: list[str] = []
        for case in cases.itertuples():
            check = f"{case.column}:{case.check}"
            if pd.isna(case.index):
                table_level.append(f"{check} ({case.failure_case})")
            else:
                by_row.setdefault(int(case.index), []).append(check)
        return by_row, table_level
    return {}, []
