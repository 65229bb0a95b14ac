"""Readers and writers: format detection, line-level error capture, atomic writes.

Every function that touches the file system for a stage lives here, so stage cores stay pure.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.errors import InputDataError, OutputWriteError

TEXT_SNIFF_BYTES = 8192
ENCODING_SAMPLE_BYTES = 1 << 20
DETECTOR_SAMPLE_BYTES = 256 * 1024
JSON_TOO_DEEP = "JSON nested too deeply"

# Longest BOM first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WIDE = ("utf-16", "utf-32")
_ARCHIVES = (
    (b"\x1f\x8b", "gzip-compressed (gunzip it)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"(\xb5/\xfd", "zstd-compressed"),
)


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


@dataclass(frozen=True)
class TextEncoding:
    """How a text file is decoded: the codec, how many BOM bytes to skip, how it was chosen."""

    name: str
    bom: int = 0
    how: str = "default"

    @property
    def ascii_compatible(self) -> bool:
        """Whether b"\\n" only ever encodes a newline (false for UTF-16/32), so the raw bytes
        can be split into lines before decoding."""
        return not self.name.startswith(_WIDE)

    def describe(self) -> str:
        """``utf-8``, ``utf-16-le (BOM)``, ``gb18030 (detected)``, ``latin-1 (setting)``."""
        if self.how in {"bom", "detected", "setting"}:
            return f"{self.name} ({'BOM' if self.how == 'bom' else self.how})"
        return self.name


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputDataError("file not found", file=path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputDataError("file is empty", file=path)


def codec_name(name: str) -> str:
    """Python's canonical spelling of a codec, with hyphens.

    >>> codec_name("UTF8"), codec_name("latin1"), codec_name("GBK")
    ('utf-8', 'iso8859-1', 'gbk')
    """
    return codecs.lookup(name).name.replace("_", "-")


def _bom(head: bytes) -> tuple[str, int] | None:
    for mark, name in _BOMS:
        if head.startswith(mark):
            return name, len(mark)
    return None


_CONTROL = bytes(range(0, 9)) + bytes(range(14, 32))


def _looks_binary(head: bytes) -> bool:
    """More than 5% control bytes (NUL, ...; not tab / newline / form feed) is not text.

    >>> _looks_binary(b"\\x00\\x01\\x02{}"), _looks_binary(b'{"output": "a\\x00 b c"}\\n' * 9)
    (True, False)
    """
    controls = sum(head.count(b) for b in _CONTROL)
    return controls * 20 > len(head)


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text of mostly ASCII has a NUL in every other byte; say which half."""
    sample = head[: TEXT_SNIFF_BYTES - TEXT_SNIFF_BYTES % 2]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be"
    return None


def _mostly_utf8(sample: bytes) -> bool:
    """Whether ``sample`` (not valid UTF-8 as a whole) is UTF-8 with a few damaged lines.

    Text in a legacy encoding (Latin-1, GBK, ...) almost never forms valid multi-byte UTF-8
    by chance, so a sample whose non-ASCII lines mostly decode as UTF-8 is UTF-8 with bad
    lines (quarantined one by one), not a file in another encoding.
    """
    lines = [line for line in sample.split(b"\n")[:-1] if not line.isascii()]
    good = 0
    for line in lines:
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            pass
    return good > 0 and good * 2 >= len(lines)


def resolve_encoding(path: str | Path, setting: str = "auto") -> TextEncoding:
    """The encoding of a text file: a BOM, else the setting, else UTF-8, else detected.

    Raises :class:`InputDataError` for binary data and for text whose encoding cannot be
    detected (the message says to set ``encoding``).
    """
    path = Path(path)
    _check_readable_file(path)
    with path.open("rb") as handle:
        head = handle.read(ENCODING_SAMPLE_BYTES)
        truncated = bool(handle.read(1))
    for magic, kind in _ARCHIVES:
        if head.startswith(magic):
            raise InputDataError(f"{kind}; decompress it first", file=path)
    found = _bom(head)
    if setting != "auto":
        name = codec_name(setting)
        skip = (
            found[1] if found and codec_name(found[0]).split("-")[:2] == name.split("-")[:2] else 0
        )
        if skip and name in {"utf-16", "utf-32"}:
            name = codec_name(found[0])  # type: ignore[index]
        return TextEncoding(name, skip, "setting")
    if found:
        return TextEncoding(found[0], found[1], "bom")
    if b"\x00" in head[:TEXT_SNIFF_BYTES]:
        wide = _utf16_without_bom(head)
        if wide is not None:
            return TextEncoding(wide, 0, "detected")
        if _looks_binary(head[:TEXT_SNIFF_BYTES]):
            raise InputDataError("looks binary (NUL bytes), not a text file", file=path)
        # A stray NUL in text: the line holding it is quarantined, not the file refused.
    sample = head
    if truncated:  # the sample may end inside a line (and inside a character)
        cut = sample.rfind(b"\n")
        sample = sample[: cut + 1] if cut > 0 else sample[: len(sample) - 3]
    try:
        sample.decode("utf-8")
        return TextEncoding("utf-8")
    except UnicodeDecodeError as err:
        if truncated and err.start >= len(sample) - 3 and err.reason == "unexpected end of data":
            return TextEncoding("utf-8")
    if _mostly_utf8(sample + b"\n"):
        return TextEncoding("utf-8")
    name = detect_legacy_encoding(sample[:DETECTOR_SAMPLE_BYTES])  # type: ignore[assignment]
    if name is None:
        raise InputDataError(
            "not UTF-8 text and the encoding cannot be detected; set `encoding` for this "
            "source in params.yaml",
            file=path,
        )
    return TextEncoding(name, 0, "detected")


# Scripts whose single-byte code pages the detector can tell apart from Western European text.
_NON_LATIN = {
    "Russian",
    "Ukrainian",
    "Bulgarian",
    "Serbian",
    "Macedonian",
    "Belarusian",
    "Kazakh",
    "Greek",
    "Hebrew",
    "Arabic",
    "Farsi",
    "Thai",
    "Turkish",
}
_MULTI_BYTE_ORDER = ("gb18030", "big5", "cp932", "shift_jis", "euc_jp", "cp949", "euc_kr")


def detect_legacy_encoding(sample: bytes) -> str | None:
    """The encoding of non-UTF-8 text, by charset-normalizer plus a tie-break for short samples.

    On a few lines the detector often scores several code pages equally (GBK bytes are also
    valid cp949; Latin-1 text decodes as cp1250 or cp852). Ties (chaos within 0.05 of the
    best) are broken toward what instruction data comes in: GB18030 (a superset of GBK and
    GB2312) first among multi-byte encodings, and cp1252 (Windows Latin-1, a superset of
    Latin-1's printable range) for single-byte text not detected as a non-Latin script.

    >>> detect_legacy_encoding("中国的首都是北京。".encode("gbk"))
    'gb18030'
    >>> detect_legacy_encoding("Très bien, ça va. Où est la gare?".encode("latin-1"))
    'cp1252'
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return None
    best = matches[0]
    ties = {codec_name(m.encoding) for m in matches if m.chaos <= best.chaos + 0.05}
    for name in _MULTI_BYTE_ORDER:
        if codec_name(name) in ties:
            return codec_name(name)
    if best.language not in _NON_LATIN:
        try:
            text = sample.decode("cp1252")
        except UnicodeDecodeError:
            text = ""
        if text and not any("\x80" <= ch <= "\x9f" for ch in text):
            return "cp1252"
    return codec_name(best.encoding)


def read_text(path: str | Path, encoding: TextEncoding) -> str:
    """The whole file decoded (BOM skipped); a bad byte is a one-line error with its offset."""
    path = Path(path)
    data = path.read_bytes()[encoding.bom :]
    try:
        return data.decode(encoding.name)
    except UnicodeDecodeError as err:
        raise InputDataError(
            f"not {encoding.name} text (invalid byte at offset {err.start + encoding.bom}); "
            "set `encoding` for this source",
            file=path,
        ) from None


def _head_text(path: Path, encoding: TextEncoding) -> str:
    with path.open("rb") as handle:
        head = handle.read(TEXT_SNIFF_BYTES + encoding.bom)[encoding.bom :]
    return head.decode(encoding.name, errors="ignore")


RECORD_KEYS = frozenset(
    {
        "conversations",
        "messages",
        "instruction",
        "prompt",
        "question",
        "query",
        "output",
        "response",
        "answer",
        "completion",
    }
)


def is_wrapper(value: Any) -> bool:
    """A JSON object that holds records in a list field instead of being a record."""
    return (
        isinstance(value, dict)
        and not RECORD_KEYS.intersection(value)
        and any(isinstance(v, list | dict) for v in value.values())
    )


def _try_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def detect_format(path: str | Path, encoding: TextEncoding | None = None) -> str:
    """Guess the container format from the path and the first bytes.

    Returns one of ``json`` (an array of records), ``json_object`` (one object holding the
    records in a list field), ``jsonl``, ``csv``, ``parquet``, ``hf_dataset``.
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
    with path.open("rb") as handle:
        if handle.read(4) == b"PAR1":
            return "parquet"
    encoding = encoding or resolve_encoding(path)
    head = _head_text(path, encoding).lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        first, newline, rest = head.partition("\n")
        if newline and rest.strip() and _try_json(first) is not None:
            return "jsonl"  # one complete value per line, the first one an array
        return "json"
    if head.startswith("{"):
        first, newline, rest = head.partition("\n")
        if not newline:
            return "jsonl"  # a first line longer than the sniff: one record per line
        try:
            value = json.loads(first)
        except (ValueError, RecursionError):
            # A pretty-printed object, or JSON Lines whose first line is damaged.
            second = next((line for line in rest.split("\n")[:-1] if line.strip()), "")
            return "jsonl" if isinstance(_try_json(second), dict) else "json_object"
        return "json_object" if is_wrapper(value) and not rest.strip() else "jsonl"
    raise InputDataError(
        "cannot detect the format (expected a JSON array, JSON Lines, CSV, Parquet or a "
        "datasets folder); set `format` for this source in params.yaml",
        file=path,
    )


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
    _check_readable_file(path)
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
    _check_readable_file(path)
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


def is_out_of_space(err: BaseException) -> bool:
    """A disk-full or over-quota error, also from libraries (pyarrow) that set no errno.

    >>> is_out_of_space(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_out_of_space(OSError("Error writing bytes to file. Detail: [errno 28] No space left"))
    True
    >>> is_out_of_space(OSError(errno.EACCES, "Permission denied"))
    False
    """
    if not isinstance(err, OSError):
        return False
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    return "no space left" in text or "quota exceeded" in text


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` and move it into place only on success. A full
    disk is a one-line :class:`OutputWriteError` naming ``target``; its previous version stays."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as err:
        if is_out_of_space(err):
            raise OutputWriteError(
                "no space left on device (disk full) while writing it; "
                + ("its previous version is kept" if target.exists() else "nothing was written"),
                file=target,
            ) from err
        raise
    finally:
        if tmp and os.path.exists(tmp):
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
    # Quarantined raw records may hold unpaired surrogates (JSON "\ud800"), which UTF-8
    # cannot encode: they are written as \u escapes, so the line still reads back as JSON.
    with (
        atomic_path(target) as tmp,
        tmp.open("w", encoding="utf-8", errors="backslashreplace") as handle,
    ):
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
