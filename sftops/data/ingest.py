"""Ingest: any supported input format -> one canonical table, every unreadable row quarantined.

Each source is read record by record (:mod:`sftops.io.readers`; JSON Lines in worker processes
when large), each record mapped to a canonical row (:mod:`sftops.data.canonical`, which
describes the columns and the accepted record shapes), rows sampled by the source's mixture
weight; the report names the detected format and encoding of every source.
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sftops.config import IngestParams, Params, SourceParams
from sftops.data.canonical import (
    CANONICAL_COLUMNS,
    NO_TOOLS,
    RowRejected,
    record_kind,
    to_canonical,
)
from sftops.io import write_json, write_jsonl, write_table, write_text
from sftops.io.detect import detect_format, is_wrapper, resolve_encoding
from sftops.io.readers import (
    TEXT_FORMATS,
    RawRecord,
    UnreadableLine,
    line_encoding,
    parse_json_line,
    read_json_lines_raw,
    read_records,
)
from sftops.rowkeys import hash_fraction


@dataclass
class SourceResult:
    name: str
    path: str
    format: str  # what was detected, e.g. sharegpt_json, alpaca_csv, mixed_jsonl
    encoding: str = "-"  # e.g. utf-8, utf-16-le (BOM), gb18030 (detected); "-" for binary
    read: int = 0
    ingested: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # record_kind of each record read
    with_tools: int = 0  # ingested rows with tool definitions or tool turns


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
                    "encoding": s.encoding,
                    "record_kinds": dict(sorted(s.kinds.items())),
                    "rows_with_tools": s.with_tools,
                    "read": s.read,
                    "ingested": s.ingested,
                    "quarantined_by_reason": dict(s.rejected.most_common()),
                }
                for s in self.sources
            ],
        }


_TURN_PREFIX = re.compile(r"^turn \d+ of '\w+': ")


def _reason_key(reason: str) -> str:
    """Group quarantine reasons for counting: 'malformed JSON (col 7): ...' -> 'malformed JSON'.

    >>> _reason_key("turn 3 of 'messages': non-text content part 'image_url' (text-only SFT)")
    "non-text content part 'image_url'"
    """
    return _TURN_PREFIX.sub("", reason).split(" (")[0].split(":")[0]


@dataclass
class _Ingested:
    # CANONICAL_COLUMNS as Arrow strings: made in the worker, they travel back as buffers, and
    # the table is built from them without one Python string per value in the parent.
    rows: dict[str, pa.Array]
    rejected: list[dict[str, Any]]
    read: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)


def _ingest_items(
    items: Iterable[RawRecord | UnreadableLine | None],
    path: Path,
    name: str,
    src: SourceParams,
    cfg: IngestParams,
) -> _Ingested:
    """Canonical rows (as columns) and quarantine records of records read from a file."""
    columns: dict[str, list[Any]] = {c: [] for c in CANONICAL_COLUMNS}
    out = _Ingested({}, [])
    add = [columns[c].append for c in CANONICAL_COLUMNS]

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
        out.kinds[record_kind(item.data)] += 1
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
    out.rows = {c: pa.array(v, pa.large_string()) for c, v in columns.items()}
    return out


def _ingest_json_lines(
    columns: dict[str, list[Any]],
    path: Path,
    name: str,
    src: SourceParams,
    cfg: IngestParams,
    codec: str = "utf-8",
) -> _Ingested:
    """``_ingest_items`` of a chunk of raw JSON Lines (``line``: 1-based numbers, ``raw``)."""
    items = map(parse_json_line, columns["line"], columns["raw"], repeat(codec))
    return _ingest_items(items, path, name, src, cfg)


def _single_wrapper(raw: list[bytes], codec: str) -> bool:
    """A "JSON Lines" file that is one object holding the records in a list field."""
    lines = [line for line in raw if line.strip()]
    if len(lines) != 1:
        return False
    item = parse_json_line(1, lines[0], codec)
    return isinstance(item, RawRecord) and is_wrapper(item.data)


def format_name(container: str, kinds: Counter[str]) -> str:
    """The detected format for the report: record kind + container.

    >>> format_name("json", Counter(sharegpt=3)), format_name("jsonl", Counter(alpaca=2, openai=1))
    ('sharegpt_json', 'mixed_jsonl')
    """
    container = {"alpaca_json": "json", "sharegpt": "jsonl", "json_object": "json"}.get(
        container, container
    )
    known = [k for k in kinds if k != "other"]
    if not known:
        return container
    return f"{known[0] if len(known) == 1 else 'mixed'}_{container}"


def ingest_source(
    src: SourceParams, cfg: IngestParams
) -> tuple[dict[str, pa.ChunkedArray], list[dict], SourceResult]:
    path = Path(src.path)
    fmt = detect_format(path) if src.format == "auto" and not _is_text(path) else src.format
    encoding = None
    if fmt in TEXT_FORMATS or (fmt == "auto" and _is_text(path)):
        encoding = resolve_encoding(path, src.encoding)
    if fmt == "auto":
        fmt = detect_format(path, encoding)
        if src.field and fmt in {"json", "jsonl"}:
            fmt = "json_object"  # the records are in a field of one JSON value
    name = src.name or path.stem
    result = SourceResult(name=name, path=str(path), format=fmt)
    if encoding is not None:
        result.encoding = encoding.describe()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of long-lived row objects: the collector would only rescan them
    try:
        raw: list[bytes] = []
        if fmt in {"jsonl", "sharegpt"} and src.field is None:
            assert encoding is not None
            raw = read_json_lines_raw(path, encoding)
            if _single_wrapper(raw, line_encoding(encoding)):
                fmt = "json_object"  # refused below, naming the keys
        if fmt in {"jsonl", "sharegpt"} and src.field is None:  # parsed in workers when large
            from sftops.parallel import map_row_chunks, row_pool

            lines: dict[str, list[Any]] = {"line": list(range(1, len(raw) + 1)), "raw": raw}
            codec = line_encoding(encoding)  # type: ignore[arg-type]
            with row_pool(len(raw)) as pool:
                parts = map_row_chunks(pool, _ingest_json_lines, lines, path, name, src, cfg, codec)
        else:
            if fmt in {"jsonl", "sharegpt"}:
                fmt = "json_object"
            items = read_records(path, fmt, encoding, src.field)
            parts = [_ingest_items(items, path, name, src, cfg)]
    finally:
        if gc_was_enabled:
            gc.enable()
    rows = {
        c: pa.chunked_array([part.rows[c] for part in parts], pa.large_string())
        for c in CANONICAL_COLUMNS
    }
    rejected: list[dict[str, Any]] = []
    for part in parts:
        rejected.extend(part.rejected)
        result.read += part.read
        result.rejected.update(part.reasons)
        result.kinds.update(part.kinds)
    result.ingested = len(rows["row_id"])
    result.format = format_name(fmt, result.kinds)
    with_tools = pc.or_(
        pc.not_equal(rows["tools"], NO_TOOLS), pc.not_equal(rows["tool_turns"], NO_TOOLS)
    )
    result.with_tools = int(pc.sum(with_tools).as_py() or 0)
    return rows, rejected, result


def _is_text(path: Path) -> bool:
    """Whether the file is text to decode (not Parquet, not a datasets folder)."""
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return False
    if not path.is_file():
        return True  # resolve_encoding names the missing file
    with path.open("rb") as handle:
        return handle.read(4) != b"PAR1"


def ingest_sources(cfg: IngestParams) -> IngestResult:
    """Read every source in params order; the table keeps that order."""
    chunks: dict[str, list[pa.Array]] = {c: [] for c in CANONICAL_COLUMNS}
    quarantine: list[dict[str, Any]] = []
    results = []
    for src in cfg.sources:
        rows, rejected, result = ingest_source(src, cfg)
        for c in CANONICAL_COLUMNS:
            chunks[c].extend(rows[c].chunks)
        quarantine.extend(rejected)
        results.append(result)
    # One chunk per column, as pd.array of the values gave (Parquet output stays the same).
    table = pd.DataFrame(
        {
            c: pd.arrays.ArrowStringArray(
                pa.chunked_array(chunks[c], pa.large_string()).combine_chunks()
            )
            for c in CANONICAL_COLUMNS
        },
        columns=CANONICAL_COLUMNS,
    )
    table = table.astype({c: "string" for c in CANONICAL_COLUMNS})
    return IngestResult(table=table, quarantine=quarantine, sources=results)


def report_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Ingest report",
        "",
        f"Rows read: {summary['rows_read']:,}; ingested: {summary['rows_ingested']:,}; "
        f"quarantined: {summary['rows_quarantined']:,}",
        "",
        "| source | format | encoding | read | ingested | with tools | quarantined by reason |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for s in summary["sources"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in s["quarantined_by_reason"].items()) or "-"
        lines.append(
            f"| {s['name']} | {s['format']} | {s['encoding']} | {s['read']} | {s['ingested']} "
            f"| {s['rows_with_tools']} | {reasons} |"
        )
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
