"""Validate: the cleaned table against its pandera schema; failing rows go to quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from sftops.config import Params, ValidateParams
from sftops.errors import StageFailed
from sftops.io import read_table, write_json, write_jsonl, write_table
from sftops.schemas import cleaned_schema, failing_rows


@dataclass
class ValidateResult:
    valid: pd.DataFrame
    quarantine: pd.DataFrame  # the rows plus `reason` (the failed checks)
    table_errors: list[str]

    @property
    def invalid_fraction(self) -> float:
        total = len(self.valid) + len(self.quarantine)
        return len(self.quarantine) / total if total else 0.0

    def summary(self) -> dict[str, Any]:
        reasons = self.quarantine["reason"].str.split("; ").explode().value_counts()
        return {
            "rows_in": len(self.valid) + len(self.quarantine),
            "rows_valid": len(self.valid),
            "rows_quarantined": len(self.quarantine),
            "invalid_fraction": round(self.invalid_fraction, 6),
            "failed_checks": {str(k): int(v) for k, v in reasons.items()},
            "table_errors": self.table_errors,
        }


def validate_table(df: pd.DataFrame, cfg: ValidateParams, languages: list[str]) -> ValidateResult:
    """Split rows into valid and quarantined (with the checks they failed)."""
    df = df.reset_index(drop=True)
    by_row, table_errors = failing_rows(cleaned_schema(languages, cfg.labels), df)
    bad = sorted(by_row)
    quarantine = df.loc[bad].copy()
    quarantine["reason"] = pd.array(
        ["; ".join(sorted(set(by_row[i]))) for i in bad], dtype="string"
    )
    valid = df.drop(index=bad).reset_index(drop=True)
    return ValidateResult(valid, quarantine.reset_index(drop=True), table_errors)


def run_validate(params: Params) -> dict[str, Any]:
    """The edge: validate the cleaned table; fail when too much of it is invalid."""
    paths, cfg = params.paths, params.validate_
    result = validate_table(read_table(paths.cleaned), cfg, params.clean.languages)
    write_jsonl(
        ({"stage": "validate", **row} for row in result.quarantine.to_dict(orient="records")),
        paths.quarantine("validate"),
    )
    summary = result.summary()
    write_json(summary, paths.report("validate"))
    if result.table_errors:
        raise StageFailed(
            "table-level schema failure: " + "; ".join(result.table_errors), file=paths.cleaned
        )
    if result.invalid_fraction > cfg.max_invalid_fraction:
        top = ", ".join(f"{k} ({v})" for k, v in list(summary["failed_checks"].items())[:3])
        raise StageFailed(
            f"{result.invalid_fraction:.1%} of rows are invalid, above "
            f"validate.max_invalid_fraction={cfg.max_invalid_fraction} (top failures: {top}); "
            f"see {paths.quarantine('validate')}",
            file=paths.cleaned,
        )
    write_table(result.valid, paths.validated)
    return summary
