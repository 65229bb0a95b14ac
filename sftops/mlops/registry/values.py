"""Values as MLflow stores them: valid keys, values cut to MLflow's limits
(``mlflow.utils.validation``), finite numbers only, batches small enough, one timestamp format."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_DESCRIPTION = 5000  # model version description column
UNKNOWN = "unknown"


def key(name: str) -> str:
    """A valid MLflow param/metric key: only ``[/\\w.\\- :]``, no ``..`` segments, ≤ 250 chars.

    >>> key("eval/../candidate.bleu (zh)")
    'eval/candidate.bleu _zh_'
    """
    cleaned = "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in name)
    parts = [p for p in cleaned.strip("/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:MAX_KEY] or "_"


def truncate(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, saying how much was cut.

    >>> len(truncate("x" * 100, 60)), truncate("x" * 100, 60).endswith("chars truncated]")
    (60, True)
    """
    if len(value) <= limit:
        return value
    note = f"…[{len(value) - limit + 40} chars truncated]"
    return value[: limit - len(note)] + note


def tag_value(value: Any) -> str:
    """A tag value: strings as they are, anything else as JSON, cut to :data:`MAX_TAG_VALUE`."""
    return truncate(value if isinstance(value, str) else json.dumps(value), MAX_TAG_VALUE)


def finite(value: Any) -> float | None:
    """A finite int/float as ``float``; ``None`` for NaN, infinities, booleans and the rest.

    >>> finite(3), finite(float("nan")), finite(True), finite("1")
    (3.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def now() -> str:
    """The timestamp written into tags and descriptions."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
