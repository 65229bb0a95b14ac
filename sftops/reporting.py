"""Render small stage summaries as markdown (for reports and Prefect artifacts)."""

from __future__ import annotations

import json
from typing import Any


def summary_markdown(title: str, summary: dict[str, Any]) -> str:
    """A title and a two-column table; nested values are shown as compact JSON.

    >>> print(summary_markdown("T", {"rows": 3, "by": {"a": 1}}))
    # T
    <BLANKLINE>
    | key | value |
    |---|---|
    | rows | 3 |
    | by | {"a": 1} |
    <BLANKLINE>
    """
    lines = [f"# {title}", "", "| key | value |", "|---|---|"]
    for key, value in summary.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines) + "\n"
