"""Ingest: any supported input format -> one canonical table, every unreadable row quarantined.

Canonical columns (all text): ``row_id`` (content hash), ``source``, ``lang`` (script guess; the
clean stage refines it), ``task``, ``system``, ``history`` (JSON list of earlier
``[user, assistant]`` turns, as in LLaMA-Factory's Alpaca format), ``instruction``, ``input``,
``output`` and ``label`` (classification rows only).
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.config import IngestParams, Params, SourceParams
from sftops.io import (
    RawRecord,
    UnreadableLine,
    detect_format,
    parse_json_line,
    read_json_lines_raw,
    read_records,
    write_json,
    write_jsonl,
    write_table,
    write_text,
)
from sftops.rowkeys import content_hash, hash_fraction
from sftops.text import script_language

CANONICAL_COLUMNS = [
    "row_id",
    "source",
    "lang",
    "task",
    "system",
    "history",
    "instruction",
    "input",
    "output",
    "label",
]
FIELD_ALIASES = {
    "instruction": ("instruction", "prompt", "question", "query"),
    "input": ("input", "context"),
    "output": ("output", "response", "answer", "completion"),
    "system": ("system",),
    "task": ("task", "category"),
    "label": ("label",),
}
USER_ROLES = {"user", "human"}
ASSISTANT_ROLES = {"assistant", "gpt", "model", "bot"}


class RowRejected(ValueError):
    """A record that cannot become a canonical row; the message is the quarantine reason."""


def _text(value: Any, name: str, *, required: bool) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        if required:
            raise RowRejected(f"field '{name}' is missing or null")
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowRejected(f"field '{name}' must be text, got {type(value).__name__}")
    return str(value)  # numbers are common in real data (math answers): keep them as text


def _pick(record: dict[str, Any], name: str, columns: dict[str, str]) -> Any:
    if name in columns:
        return record.get(columns[name])
    for alias in FIELD_ALIASES[name]:
        if alias in record:
            return record[alias]
    return None


def _turns_to_row(turns: Any, key: str) -> dict[str, str]:
    if not isinstance(turns, list) or not turns:
        raise RowRejected(f"'{key}' must be a non-empty list of turns")
    system, pairs, pending_user = "", [], None
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowRejected(f"turn {number} of '{key}' is not an object")
        role = str(turn.get("role", turn.get("from", ""))).lower()
        content = _text(turn.get("content", turn.get("value")), f"{key}[{number}]", required=True)
        if role == "system" and number == 0:
            system = content
        elif role in USER_ROLES and pending_user is None:
            pending_user = content
        elif role in ASSISTANT_ROLES and pending_user is not None:
            pairs.append([pending_user, content])
            pending_user = None
        else:
            raise RowRejected(f"turn {number} of '{key}': unexpected role '{role}' at this point")
    if pending_user is not None or not pairs:
        raise RowRejected(f"'{key}' does not end with an assistant turn")
    (instruction, output), history = pairs[-1], pairs[:-1]
    return {
        "system": system,
        "history": json.dumps(history, ensure_ascii=False),
        "instruction": instruction,
        "input": "",
        "output": output,
    }


def to_canonical(
    data: Any, source: str, columns: dict[str, str], max_field_chars: int
) -> dict[str, Any]:
    """One raw record (Alpaca, ShareGPT or OpenAI messages) -> a canonical row, or RowRejected."""
    if not isinstance(data, dict):
        raise RowRejected(f"record must be an object, got {type(data).__name__}")
    conversation_key = next((k for k in ("conversations", "messages") if k in data), None)
    if conversation_key is not None:
        row = _turns_to_row(data[conversation_key], conversation_key)
    else:
        row = {
            "system": _text(_pick(data, "system", columns), "system", required=False),
            "history": "[]",
            "instruction": _text(_pick(data, "instruction", columns), "instruction", required=True),
            "input": _text(_pick(data, "input", columns), "input", required=False),
            "output": _text(_pick(data, "output", columns), "output", required=True),
        }
    for name in ("system", "history", "instruction", "input", "output"):
        if len(row[name]) > max_field_chars:
            raise RowRejected(
                f"field '{name}' has {len(row[name]):,} chars (ingest.max_field_chars="
                f"{max_field_chars:,})"
            )
    label = _pick(data, "label", columns)
    row["label"] = _text(label, "label", required=False) or None  # type: ignore[assignment]
    row["task"] = _text(_pick(data, "task", columns), "task", required=False)
    row["source"] = source
    row["row_id"] = content_hash(
        row["system"], row["history"], row["instruction"], row["input"], row["output"]
    )
    row["lang"] = script_language(row["instruction"] + " " + row["input"] + " " + row["output"])
    return row


@dataclass
class SourceResult:
    name: str
    path: str
    format: str
    read: int = 0
    ingested: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass
class IngestResult:
    table: pd.DataFrame
    quarantine: list[dict[str, Any]]
    sources: list[SourceResult]

    def summary(self) -> dict[str, Any]:
        return {
            "rows_read": sum(s.read for s in self.sources),
            "rows_ingested": len(self.table),
            "rows_quarantined": len(self.quarantine),
            "sources": [
                {
                    "name": s.name,
                    "path": s.path,
                    "format": s.format,
                    "read": s.read,
                    "ingested": s.ingested,
                    "quarantined_by_reason": dict(s.rejected.most_common()),
                }
                for s in self.sources
            ],
        }


def _reason_key(reason: str) -> str:
    """Group quarantine reasons for counting: 'malformed JSON (col 7): ...' -> 'malformed JSON'."""
    return reason.split(" (")[0].split(":")[0]


@dataclass
class _Ingested:
    rows: dict[str, list[Any]]  # CANONICAL_COLUMNS
    rejected: list[dict[str, Any]]
    read: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def _ingest_items(
    items: Iterable[RawRecord | UnreadableLine | None],
    path: Path,
    name: str,
    src: SourceParams,
    cfg: IngestParams,
) -> _Ingested:
    """Canonical rows (as columns) and quarantine records of records read from a file."""
    out = _Ingested({c: [] for c in CANONICAL_COLUMNS}, [])
    add = [out.rows[c].append for c in CANONICAL_COLUMNS]

    def reject(line: int, reason: str, raw: Any) -> None:
        out.reasons[_reason_key(reason)] += 1
        out.rejected.append(
            {
                "stage": "ingest",
                "source": name,
                "file": str(path),
                "line": line,
                "reason": reason,
                "record": raw,
            }
        )

    for item in items:
        if item is None:
            continue
        out.read += 1
        if isinstance(item, UnreadableLine):
            reject(item.line, item.reason, item.raw)
            continue
        assert isinstance(item, RawRecord)
        try:
            row = to_canonical(item.data, name, src.columns, cfg.max_field_chars)
        except RowRejected as err:
            reject(item.line, str(err), item.data)
            continue
        if src.weight < 1 and hash_fraction(row["row_id"], name) >= src.weight:
            reject(item.line, f"not sampled (mixture weight {src.weight})", item.data)
            continue
        for append, column in zip(add, CANONICAL_COLUMNS, strict=True):
            append(row[column])
    return out


def _ingest_json_lines(
    columns: dict[str, list[Any]], path: Path, name: str, src: SourceParams, cfg: IngestParams
) -> _Ingested:
    """``_ingest_items`` of a chunk of raw JSON Lines (``line``: 1-based numbers, ``raw``)."""
    items = map(parse_json_line, columns["line"], columns["raw"])
    return _ingest_items(items, path, name, src, cfg)


def ingest_source(
    src: SourceParams, cfg: IngestParams
) -> tuple[dict[str, list[Any]], list[dict], SourceResult]:
    path = Path(src.path)
    fmt = detect_format(path) if src.format == "auto" else src.format
    name = src.name or path.stem
    result = SourceResult(name=name, path=str(path), format=fmt)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of long-lived row objects: the collector would only rescan them
    try:
        if fmt in {"jsonl", "sharegpt"}:  # parsed in worker processes when large
            from sftops.parallel import map_row_chunks, row_pool

            raw = read_json_lines_raw(path)
            lines: dict[str, list[Any]] = {"line": list(range(1, len(raw) + 1)), "raw": raw}
            with row_pool(len(raw)) as pool:
                parts = map_row_chunks(pool, _ingest_json_lines, lines, path, name, src, cfg)
        else:
            parts = [_ingest_items(read_records(path, fmt), path, name, src, cfg)]
    finally:
        if gc_was_enabled:
            gc.enable()
    rows: dict[str, list[Any]] = {c: [] for c in CANONICAL_COLUMNS}
    rejected: list[dict[str, Any]] = []
    for part in parts:
        for c in CANONICAL_COLUMNS:
            rows[c].extend(part.rows[c])
        rejected.extend(part.rejected)
        result.read += part.read
        result.rejected.update(part.reasons)
    result.ingested = len(rows["row_id"])
    return rows, rejected, result


def ingest_sources(cfg: IngestParams) -> IngestResult:
    """Read every source in params order; the table keeps that order."""
    all_rows: dict[str, list[Any]] = {c: [] for c in CANONICAL_COLUMNS}
    quarantine: list[dict[str, Any]] = []
    results = []
    for src in cfg.sources:
        rows, rejected, result = ingest_source(src, cfg)
        for c in CANONICAL_COLUMNS:
            all_rows[c].extend(rows[c])
        quarantine.extend(rejected)
        results.append(result)
    table = pd.DataFrame(all_rows, columns=CANONICAL_COLUMNS)
    table = table.astype({c: "string" for c in CANONICAL_COLUMNS})
    return IngestResult(table=table, quarantine=quarantine, sources=results)


def report_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Ingest report",
        "",
        f"Rows read: {summary['rows_read']:,}; ingested: {summary['rows_ingested']:,}; "
        f"quarantined: {summary['rows_quarantined']:,}",
        "",
        "| source | format | read | ingested | quarantined by reason |",
        "|---|---|---:|---:|---|",
    ]
    for s in summary["sources"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in s["quarantined_by_reason"].items()) or "-"
        lines.append(f"| {s['name']} | {s['format']} | {s['read']} | {s['ingested']} | {reasons} |")
    return "\n".join(lines) + "\n"


def run_ingest(params: Params) -> dict[str, Any]:
    """The edge: read every source, write the canonical table, quarantine and report."""
    result = ingest_sources(params.ingest)
    paths = params.paths
    write_table(result.table, paths.ingested)
    write_jsonl(result.quarantine, paths.quarantine("ingest"))
    summary = result.summary()
    write_json(summary, paths.report("ingest"))
    write_text(report_markdown(summary), paths.report("ingest", "md"))
    return summary
