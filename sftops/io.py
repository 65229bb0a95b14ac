"""Readers and writers: format detection, line-level error capture, atomic writes.

Every function that touches the file system for a stage lives here, so stage cores stay pure.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.errors import InputDataError

TEXT_SNIFF_BYTES = 8192


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


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputDataError("file not found", file=path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputDataError("file is empty", file=path)


def _check_text(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(TEXT_SNIFF_BYTES)
    if b"\x00" in head:
        raise InputDataError("looks binary (NUL bytes), not a text file", file=path)
    first_line = head.split(b"\n", 1)[0]
    try:
        first_line.decode("utf-8")
    except UnicodeDecodeError as err:
        # A multi-byte character cut at the sniff boundary is fine; a bad byte in the first
        # line means the file is in another encoding (later bad lines are quarantined alone).
        if err.start < len(head) - 4:
            raise InputDataError(
                f"not UTF-8 text (invalid byte at offset {err.start})", file=path
            ) from None


def detect_format(path: str | Path) -> str:
    """Guess the input format from the path and the first bytes.

    Returns one of ``alpaca_json``, ``jsonl``, ``csv``, ``parquet``, ``hf_dataset``.
    """
    path = Path(path)
    _check_readable_file(path)
    if path.is_dir():
        markers = ("dataset_info.json", "state.json", "dataset_dict.json")
        if any((path / m).exists() for m in markers):
            return "hf_dataset"
        raise InputDataError("folder is not a saved Hugging Face datasets folder", file=path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in {".csv", ".tsv"}:
        return "csv"
    _check_text(path)
    with path.open("rb") as handle:
        head = handle.read(TEXT_SNIFF_BYTES).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "alpaca_json"
    if head.startswith(b"{"):
        return "jsonl"
    raise InputDataError(
        "cannot detect the format (expected a JSON array, JSON Lines, CSV, Parquet or a "
        "datasets folder); set `format` for this source in params.yaml",
        file=path,
    )


def iter_json_array(path: Path) -> Iterator[RawRecord]:
    """Records of a JSON array file; the line of each record is not tracked (index + 1 instead)."""
    _check_text(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputDataError(
            f"malformed JSON (col {err.colno}): {err.msg}", file=path, row=err.lineno
        ) from None
    except UnicodeDecodeError as err:
        raise InputDataError(
            f"not UTF-8 text (invalid byte at offset {err.start})", file=path
        ) from None
    if not isinstance(data, list):
        raise InputDataError("expected a JSON array of records at the top level", file=path)
    for index, item in enumerate(data):
        yield RawRecord(index + 1, item)


def iter_json_lines(path: Path) -> Iterator[RawRecord | UnreadableLine]:
    """Parse JSON Lines one line at a time so one bad line costs only that line."""
    _check_text(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            item = parse_json_line(number, raw)
            if item is not None:
                yield item


def read_json_lines_raw(path: Path) -> list[bytes]:
    """The raw lines of a JSON Lines file (line number ``i + 1`` is item ``i``)."""
    _check_readable_file(path)
    _check_text(path)
    with path.open("rb") as handle:
        return handle.readlines()


def parse_json_line(number: int, raw: bytes) -> RawRecord | UnreadableLine | None:
    """One line of a JSON Lines file: its record, why it is unreadable, or None when blank."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return UnreadableLine(number, f"not UTF-8 (byte {err.start})", repr(raw[:200]))
    try:
        return RawRecord(number, json.loads(text))
    except json.JSONDecodeError as err:
        reason = f"malformed JSON (col {err.colno}): {err.msg}"
        return UnreadableLine(number, reason, text.rstrip("\r\n"))


def iter_csv(path: Path) -> Iterator[RawRecord | UnreadableLine]:
    """CSV rows as dicts of strings; rows with the wrong number of fields are unreadable."""
    _check_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise InputDataError("file is empty", file=path) from None
        header = [h.lstrip("\ufeff").strip() for h in header]
        try:
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(header):
                    yield UnreadableLine(
                        line,
                        f"expected {len(header)} fields, found {len(fields)}",
                        delimiter.join(fields),
                    )
                    continue
                yield RawRecord(line, dict(zip(header, fields, strict=True)))
        except UnicodeDecodeError as err:
            raise InputDataError(
                f"not UTF-8 text near line {reader.line_num + 1} (byte {err.start})", file=path
            ) from None
        except csv.Error as err:
            raise InputDataError(f"malformed CSV: {err}", file=path, row=reader.line_num) from None


def iter_table(frame: pd.DataFrame) -> Iterator[RawRecord]:
    for index, record in enumerate(frame.to_dict(orient="records")):
        yield RawRecord(index + 1, record)


def read_parquet_records(path: Path) -> Iterator[RawRecord]:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise InputDataError(f"cannot read Parquet: {err}", file=path) from None
    return iter_table(frame)


def read_hf_dataset_records(path: Path) -> Iterator[RawRecord]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:
        raise InputDataError(f"cannot load the datasets folder: {err}", file=path) from None
    if isinstance(loaded, datasets.DatasetDict):
        frames = [loaded[name].to_pandas() for name in loaded]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    else:
        frame = loaded.to_pandas()
    return iter_table(frame)


def read_records(path: str | Path, fmt: str = "auto") -> Iterator[RawRecord | UnreadableLine]:
    """Records of any supported input file; unreadable lines are yielded, not raised."""
    path = Path(path)
    _check_readable_file(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "alpaca_json":
        return iter_json_array(path)
    if fmt in {"jsonl", "sharegpt"}:
        return iter_json_lines(path)
    if fmt == "csv":
        return iter_csv(path)
    if fmt == "parquet":
        return read_parquet_records(path)
    if fmt == "hf_dataset":
        return read_hf_dataset_records(path)
    raise InputDataError(f"unknown format {fmt!r}", file=path)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` and move it into place only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table(frame: pd.DataFrame, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputDataError("file not found (run the previous stage first)", file=path)
    return pd.read_parquet(path)


def write_jsonl(records: Iterable[dict[str, Any]], target: str | Path) -> int:
    count = 0
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str))
            handle.write("\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_json(data: Any, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(
            json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
        )


def write_text(text: str, target: str | Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
