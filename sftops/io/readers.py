"""Records of an input file, one at a time, with where each came from.

A line or row that cannot be read is yielded as :class:`UnreadableLine` (the ingest stage
quarantines it with its reason) instead of failing the file; a file that cannot be read at all
is one :class:`~sftops.errors.InputDataError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.errors import InputDataError
from sftops.io.detect import (
    TextEncoding,
    check_readable_file,
    detect_format,
    read_text,
    resolve_encoding,
)

JSON_TOO_DEEP = "JSON nested too deeply"


@dataclass(frozen=True)
class RawRecord:
    """One record as read from a file, with where it came from (``line`` is 1-based)."""

    line: int
    data: Any


@dataclass(frozen=True)
class UnreadableLine:
    line: int
    reason: str
    raw: str


def load_json(path: Path, encoding: TextEncoding) -> Any:
    """The whole file as one JSON value; malformed or too deeply nested JSON is one line."""
    text = read_text(path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputDataError(
            f"malformed JSON (col {err.colno}): {err.msg}", file=path, row=err.lineno
        ) from None
    except RecursionError:
        raise InputDataError(JSON_TOO_DEEP, file=path) from None


def select_field(data: Any, field: str | None, path: Path) -> list[Any]:
    """The list of records in a loaded JSON file: the value itself or ``data[field]``."""
    if field is None:
        if isinstance(data, list):
            return data
        if isinstance(data, dict):
            keys = ", ".join(repr(k) for k in list(data)[:20])
            lists = [k for k, v in data.items() if isinstance(v, list)]
            hint = f"; set `field: {lists[0]}` for this source" if len(lists) == 1 else ""
            raise InputDataError(
                f"top-level JSON object with keys {keys}, not a list of records{hint}", file=path
            )
        raise InputDataError(
            f"expected a JSON array of records at the top level, got {type(data).__name__}",
            file=path,
        )
    value = data
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            keys = list(value)[:20] if isinstance(value, dict) else []  # type: ignore[assignment]
            raise InputDataError(
                f"field {field!r} not found (keys: {', '.join(map(repr, keys)) or 'none'})",
                file=path,
            )
        value = value[part]
    if not isinstance(value, list):
        raise InputDataError(
            f"field {field!r} holds {type(value).__name__}, not a list of records", file=path
        )
    return value


def iter_json_array(
    path: Path, encoding: TextEncoding | None = None, field: str | None = None
) -> Iterator[RawRecord]:
    """Records of a JSON file (an array, or the list at ``field`` of an object); the line of
    each record is not tracked (index + 1 instead)."""
    data = load_json(path, encoding or resolve_encoding(path))
    records = select_field(data, field, path)
    return (RawRecord(index + 1, item) for index, item in enumerate(records))


def read_json_lines_raw(path: Path, encoding: TextEncoding | None = None) -> list[bytes]:
    """The raw lines of a JSON Lines file (line number ``i + 1`` is item ``i``), BOM skipped;
    UTF-16/32 files are transcoded to UTF-8 first (their lines are then UTF-8)."""
    check_readable_file(path)
    encoding = encoding or resolve_encoding(path)
    if not encoding.ascii_compatible:
        return io.BytesIO(read_text(path, encoding).encode("utf-8", "surrogatepass")).readlines()
    with path.open("rb") as handle:
        handle.seek(encoding.bom)
        return handle.readlines()


def line_encoding(encoding: TextEncoding) -> str:
    """The codec of the lines :func:`read_json_lines_raw` returns."""
    return encoding.name if encoding.ascii_compatible else "utf-8"


def iter_json_lines(
    path: Path, encoding: TextEncoding | None = None
) -> Iterator[RawRecord | UnreadableLine]:
    """Parse JSON Lines one line at a time so one bad line costs only that line."""
    encoding = encoding or resolve_encoding(path)
    codec = line_encoding(encoding)
    for number, raw in enumerate(read_json_lines_raw(path, encoding), start=1):
        item = parse_json_line(number, raw, codec)
        if item is not None:
            yield item


def parse_json_line(
    number: int, raw: bytes, encoding: str = "utf-8"
) -> RawRecord | UnreadableLine | None:
    """One line of a JSON Lines file: its record, why it is unreadable, or None when blank."""
    if not raw.strip():
        return None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        name = "UTF-8" if encoding == "utf-8" else encoding
        return UnreadableLine(number, f"not {name} (byte {err.start})", repr(raw[:200]))
    try:
        return RawRecord(number, json.loads(text))
    except json.JSONDecodeError as err:
        reason = f"malformed JSON (col {err.colno}): {err.msg}"
        return UnreadableLine(number, reason, text.rstrip("\r\n")[:100_000])
    except RecursionError:
        return UnreadableLine(number, JSON_TOO_DEEP, text[:200])


def _has_undecodable(fields: list[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for f in fields if not f.isascii() for ch in f)


def iter_csv(
    path: Path, encoding: TextEncoding | None = None
) -> Iterator[RawRecord | UnreadableLine]:
    """CSV rows as dicts of strings; rows with the wrong number of fields or undecodable bytes
    are unreadable (quarantined alone)."""
    encoding = encoding or resolve_encoding(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # Undecodable bytes become lone surrogates, so the row holding them is quarantined
    # instead of the whole file failing (UTF-16/32 cannot do that: strict there).
    errors = "surrogateescape" if encoding.ascii_compatible else "strict"
    # Fields longer than the csv module's 128 KiB default are real (long answers):
    # ingest.max_field_chars is the limit that quarantines them.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    with path.open("rb") as raw:
        raw.seek(encoding.bom)
        handle = io.TextIOWrapper(raw, encoding=encoding.name, errors=errors, newline="")
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError("file is empty", file=path) from None
        except (csv.Error, UnicodeDecodeError) as err:
            raise InputDataError(f"unreadable CSV header: {err}", file=path) from None
        header = [h.lstrip("\ufeff").strip() for h in header]
        if not any(header):
            raise InputDataError("no header row (the first line is blank)", file=path)
        if _has_undecodable(header):
            raise InputDataError(
                f"CSV header is not {encoding.name} text; set `encoding` for this source",
                file=path,
            )
        try:
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if _has_undecodable(fields):
                    raw_row = delimiter.join(fields).encode("utf-8", "surrogateescape")
                    yield UnreadableLine(line, f"not {encoding.name} text", repr(raw_row[:200]))
                    continue
                if len(fields) != len(header):
                    yield UnreadableLine(
                        line,
                        f"expected {len(header)} fields, found {len(fields)}",
                        delimiter.join(fields)[:100_000],
                    )
                    continue
                yield RawRecord(line, dict(zip(header, fields, strict=True)))
        except UnicodeDecodeError as err:
            raise InputDataError(
                f"not {encoding.name} text near line {reader.line_num + 1} (byte {err.start})",
                file=path,
            ) from None
        except csv.Error as err:
            raise InputDataError(f"malformed CSV: {err}", file=path, row=reader.line_num) from None


def to_plain(value: Any) -> Any:
    """Arrow/NumPy values as plain Python: arrays -> lists (nested structs too), scalars -> items.

    >>> import numpy as np
    >>> to_plain(np.array([{"from": "human", "value": np.array([1])}], dtype=object))
    [{'from': 'human', 'value': [1]}]
    """
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, str | bytes):
        return to_plain(tolist()) if getattr(value, "ndim", 0) else tolist()
    return value


def iter_table(frame: pd.DataFrame) -> Iterator[RawRecord]:
    for column in frame.columns:
        if frame[column].dtype == object:  # lists / structs of a Parquet or Arrow column
            frame[column] = frame[column].map(to_plain)
    for index, record in enumerate(frame.to_dict(orient="records")):
        yield RawRecord(index + 1, record)


def read_parquet_records(path: Path) -> Iterator[RawRecord]:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise InputDataError(f"cannot read Parquet: {_one_line(err)}", file=path) from None
    return iter_table(frame)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] or type(err).__name__


def read_hf_dataset_records(path: Path) -> Iterator[RawRecord]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:
        raise InputDataError(
            f"cannot load the datasets folder: {_one_line(err)}", file=path
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        frames = [loaded[name].to_pandas() for name in loaded]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        frame = loaded.to_pandas()
    return iter_table(frame)


TEXT_FORMATS = frozenset({"json", "alpaca_json", "json_object", "jsonl", "sharegpt", "csv"})


def read_records(
    path: str | Path,
    fmt: str = "auto",
    encoding: TextEncoding | None = None,
    field: str | None = None,
) -> Iterator[RawRecord | UnreadableLine]:
    """Records of any supported input file; unreadable lines are yielded, not raised."""
    path = Path(path)
    check_readable_file(path)
    if fmt == "auto":
        fmt = detect_format(path, encoding)
    if fmt in TEXT_FORMATS and encoding is None:
        encoding = resolve_encoding(path)
    if field is not None and fmt not in {"json", "alpaca_json", "json_object"}:
        raise InputDataError(f"`field` applies to JSON files, not to {fmt}", file=path)
    if fmt in {"json", "alpaca_json", "json_object"}:
        return iter_json_array(path, encoding, field)
    if fmt in {"jsonl", "sharegpt"}:
        return iter_json_lines(path, encoding)
    if fmt == "csv":
        return iter_csv(path, encoding)
    if fmt == "parquet":
        return read_parquet_records(path)
    if fmt == "hf_dataset":
        return read_hf_dataset_records(path)
    raise InputDataError(f"unknown format {fmt!r}", file=path)
