"""Builders shared by tests: canonical tables from a few literal rows."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sftops.data.ingest import CANONICAL_COLUMNS, to_canonical


def canonical_table(records: list[dict[str, Any]], source: str = "test") -> pd.DataFrame:
    rows = [to_canonical(r, source, {}, 1_000_000) for r in records]
    return pd.DataFrame(rows, columns=CANONICAL_COLUMNS).astype(
        {c: "string" for c in CANONICAL_COLUMNS}
    )
