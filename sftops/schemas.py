"""pandera schemas for every table that crosses a stage boundary."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Optional

import numpy as np
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


_TOOL_ROLES = {"tool_call", "observation"}


def _is_tools(value: str) -> bool:
    """``tools``: a JSON list of tool definitions (objects)."""
    try:
        tools = json.loads(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return isinstance(tools, list) and all(isinstance(t, dict) for t in tools)


def _is_tool_message(message: object) -> bool:
    if not isinstance(message, dict) or message.get("role") not in _TOOL_ROLES:
        return False
    if not isinstance(message.get("content"), str):
        return False
    if message["role"] == "observation":
        return True
    calls = message.get("calls")
    return (
        isinstance(calls, list)
        and bool(calls)
        and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls)
    )


def _is_tool_turns(value: str) -> bool:
    """``tool_turns``: ``[{"turn": k, "messages": [tool_call, observation, ...]}, ...]``.

    >>> _is_tool_turns('[{"turn": 0, "messages": [{"role": "tool_call", "content": "", '
    ...                '"calls": [{"name": "f", "arguments": {}}]}], "output_is_tool_call": true}]')
    True
    >>> _is_tool_turns('[{"turn": 0, "messages": [{"role": "user", "content": "x"}]}]')
    False
    """
    try:
        turns = json.loads(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return isinstance(turns, list) and all(
        isinstance(t, dict)
        and isinstance(t.get("turn"), int)
        and t["turn"] >= 0
        and isinstance(t.get("messages"), list)
        and bool(t["messages"])
        and all(_is_tool_message(m) for m in t["messages"])
        for t in turns
    )


def _empty_or(column: pd.Series, test: Callable[[str], bool]) -> pd.Series:
    """Per value: ``"[]"`` (nearly every row, decided for the whole column at once) or
    ``test(value)``; the element-wise check it replaces cost ~2 µs of pandera per value.

    >>> _empty_or(pd.Series(["[]", "[1]", "x"]), lambda v: v.startswith("[")).tolist()
    [True, True, False]
    """
    ok = (column == "[]").to_numpy(dtype=bool, na_value=False, copy=True)
    rest = np.flatnonzero(~ok)
    values = column.to_numpy(object)
    ok[rest] = [test(values[i]) for i in rest.tolist()]
    return pd.Series(ok, index=column.index)


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
    # Optional so tables written before tool calling was carried still validate.
    tools: Optional[Series[str]]  # noqa: UP045 - pandera reads Optional[...] from the annotation
    tool_turns: Optional[Series[str]]  # noqa: UP045

    @pa.check("history")
    def history_is_list_of_turn_pairs(cls, column: pd.Series) -> pd.Series:
        return _empty_or(column, _is_history)

    @pa.check("tools")
    def tools_is_list_of_definitions(cls, column: pd.Series) -> pd.Series:
        return _empty_or(column, _is_tools)

    @pa.check("tool_turns")
    def tool_turns_are_tool_messages(cls, column: pd.Series) -> pd.Series:
        return _empty_or(column, _is_tool_turns)

    @pa.dataframe_check
    def tool_turns_point_at_a_turn(cls, df: pd.DataFrame) -> pd.Series:  # type: ignore[misc]
        """Each tool segment precedes an existing assistant turn (0 .. len(history))."""
        if "tool_turns" not in df:
            return pd.Series(True, index=df.index)
        ok = (df["tool_turns"] == "[]").to_numpy(dtype=bool, na_value=False, copy=True)
        rest = np.flatnonzero(~ok)
        turns, history = df["tool_turns"].to_numpy(object), df["history"].to_numpy(object)
        ok[rest] = [_turns_in_range(turns[i], history[i]) for i in rest.tolist()]
        return pd.Series(ok, index=df.index)

    class Config:
        strict = True
        coerce = True


def _turns_in_range(tool_turns: str, history: str) -> bool:
    try:
        turns, pairs = json.loads(tool_turns), json.loads(history)
        return all(0 <= t["turn"] <= len(pairs) for t in turns)
    except (TypeError, ValueError, KeyError, RecursionError):
        return False  # reported by the element-wise checks


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
            # A dataframe-level check fails once per column of the row: name it once.
            table_check = case.schema_context == "DataFrameSchema" and not pd.isna(case.index)
            check = str(case.check) if table_check else f"{case.column}:{case.check}"
            if pd.isna(case.index):
                table_level.append(f"{check} ({case.failure_case})")
            else:
                checks = by_row.setdefault(int(case.index), [])
                if check not in checks:
                    checks.append(check)
        return by_row, table_level
    return {}, []
