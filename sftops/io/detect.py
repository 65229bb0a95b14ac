"""What an input file is: its text encoding (BOM, setting, UTF-8, else detected) and its
container format (JSON array / object, JSON Lines, CSV, Parquet, a datasets folder).

Refusals (binary data, an archive, an undetectable encoding or format) are one-line
:class:`~sftops.errors.InputDataError` naming the file and what to set in params.yaml.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftops.errors import InputDataError

TEXT_SNIFF_BYTES = 8192
ENCODING_SAMPLE_BYTES = 1 << 20
DETECTOR_SAMPLE_BYTES = 256 * 1024

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


def check_readable_file(path: Path) -> None:
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
    check_readable_file(path)
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


def head_text(path: Path, encoding: TextEncoding) -> str:
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
    check_readable_file(path)
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
    head = head_text(path, encoding).lstrip("\ufeff \t\r\n")
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
