"""The Prefect API of a `sftops run` when no server is configured.

Prefect would start its own temporary API as a child in the run's process group, so the
Ctrl-C that a terminal sends to that group stops the API too, and the run then spends minutes
retrying to report its end to it. Started here in a session of its own, the API outlives the
Ctrl-C, records the run's final state, and is stopped when the run has finished.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sftops.stack.api import healthy
from sftops.stack.services import launch, wait_until
from sftops.stack.settings import free_port


@contextmanager
def prefect_api_for_run(logs: Path) -> Iterator[str]:
    """The configured ``PREFECT_API_URL``, else a temporary API on 127.0.0.1 (the same app and
    database Prefect's own temporary server uses) for the block; its log goes to ``logs``."""
    import prefect
    from prefect.context import refresh_global_settings_context
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    configured = PREFECT_API_URL.value()
    if configured:
        yield str(configured)
        return
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn",
        "--app-dir", str(Path(prefect.__file__).resolve().parents[1]),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    api = launch("prefect-api", cmd, logs=logs, cwd=Path.cwd(), env=env)
    url = f"http://127.0.0.1:{port}/api"
    try:
        timeout = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        wait_until("the run's Prefect API", lambda: healthy(f"{url}/health"), [api], timeout)
        print(f"Prefect API for this run: {url} (stops with the run)", file=sys.stderr)
        # Process-wide, not only this thread's settings context: Prefect's background threads
        # (the API log handler, the events client) read the global settings and would start a
        # temporary API of their own in the run's process group.
        os.environ["PREFECT_API_URL"] = url
        refresh_global_settings_context()
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        _deliver_pending_reports()
        os.environ.pop("PREFECT_API_URL", None)
        # Nothing may be sent to an API that is gone: a log record queued after the stop would
        # have Prefect's log worker retry the connection for a minute before the process exits.
        os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
        refresh_global_settings_context()
        api.stop(timeout=10.0)


def _deliver_pending_reports(timeout: float = 10.0) -> None:
    """Send the run's queued logs and events while its API is still up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        except Exception as error:  # a report lost is not worth failing the run's exit
            print(
                f"could not deliver the run's pending {worker.__name__} items: {error}",
                file=sys.stderr,
            )
