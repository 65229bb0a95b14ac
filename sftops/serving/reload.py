"""Reloading: :class:`ModelServer` holds the engine being served and polls its source's
``version_label()`` every ``poll_seconds`` in a background thread; when it changes, the new
version is loaded *beside* the old one and swapped in with one assignment, so requests in
flight finish on the engine they started with and no request sees a half-loaded model. A failed
poll or load is logged and shown on ``/health`` (``last_poll_error``); the old version keeps
serving and the next poll retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sftops.config import GenerationParams
from sftops.serving.engine import ChatEngine
from sftops.serving.sources import MODELS_URI, ModelSource

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 30.0
DEFAULT_MAX_BATCH = 32
"""Concurrent requests the server generates for in one batch (1: one request at a time)."""

EngineLoader = Callable[[ModelSource], ChatEngine]


@dataclass
class ModelServer:
    """The engine currently served, its source, and the poller that reloads it.

    ``loader`` builds an engine from a source (default :meth:`ChatEngine.load`); the first
    engine is loaded in the constructor, so a bad source fails before the server starts.
    """

    source: ModelSource
    poll_seconds: float = DEFAULT_POLL_SECONDS
    params: GenerationParams = field(default_factory=GenerationParams)
    loader: EngineLoader | None = None
    served_model_name: str | None = None
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        if self.loader is None:
            params, max_batch = self.params, self.max_batch
            self.loader = lambda source: ChatEngine.load(source, params=params, max_batch=max_batch)
        self._engine = self.loader(self.source)
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.last_poll_at: datetime | None = None
        self.last_poll_error: str | None = None
        if self.served_model_name is None:
            described = self.source.describe()
            match = MODELS_URI.match(described)
            self.served_model_name = match["name"] if match else Path(described).name or "model"

    @property
    def engine(self) -> ChatEngine:
        return self._engine

    def check_for_update(self) -> bool:
        """One poll: reload and swap if the version label moved; True if it swapped.

        Errors are logged and kept in ``last_poll_error``; the current engine keeps serving.
        """
        with self._swap_lock:
            try:
                label = self.source.version_label()
                changed = label != self._engine.version_label
                if changed:
                    log.info("%s moved to %s; reloading", self.source.describe(), label)
                    assert self.loader is not None
                    engine = self.loader(self.source)
                    self._engine = engine  # one assignment: requests see old or new, whole
                    self.reloads += 1
                    log.info("now serving %s", engine.version_label)
                self.last_poll_error = None
                return changed
            except Exception as exc:
                self.last_poll_error = f"{type(exc).__name__}: {exc}"
                log.warning("version poll of %s failed: %s", self.source.describe(), exc)
                return False
            finally:
                self.last_poll_at = datetime.now(UTC)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check_for_update()

    def start_polling(self) -> None:
        """Start the background poller (no-op when ``poll_seconds`` <= 0 or already running)."""
        if self.poll_seconds <= 0 or (self._thread and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="sftops-poll", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def health(self) -> dict[str, Any]:
        engine = self._engine
        return {
            "status": "ok",
            "model": self.served_model_name,
            "source": self.source.describe(),
            "version": engine.version_label,
            "loaded_at": engine.loaded_at.isoformat(),
            "model_path": engine.model_path,
            "context_length": engine.context_length,
            "poll_seconds": self.poll_seconds,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "last_poll_error": self.last_poll_error,
            "reloads": self.reloads,
            "max_batch": engine.max_batch,
            "batches": engine.batcher.batches if engine.batcher else 0,
            "batched_requests": engine.batcher.batched_requests if engine.batcher else 0,
        }
