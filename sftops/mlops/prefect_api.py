"""The Prefect API a run reports to: its outage as one line naming the server, and its cancel
of a run called in this process (no runner watches those).

The Prefect client already retries a request that fails on the network once it has reached the
server (``PREFECT_CLIENT_MAX_RETRIES``, exponential backoff); what reaches the caller after that
is an ``httpx`` transport error deep in Prefect's engine, or an HTTP 5xx: this turns either
into an :class:`SftopsError` that names the server and says what is kept.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from uuid import UUID

from sftops.errors import SftopsError

log = logging.getLogger("sftops.mlops.prefect_api")

KEPT = (
    "the stages that finished are in the DVC cache and a rerun once the server is back "
    "restores them"
)


def api_url() -> str:
    """``PREFECT_API_URL``, or a note that the run used an ephemeral API."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "(ephemeral Prefect API)")


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or while handling, outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def unreachable(err: BaseException, url: str | None = None) -> SftopsError | None:
    """A one-line error when ``err`` (or what it came from) is the Prefect API failing: no
    connection, a broken one, a timeout, or a 5xx answer. ``None`` for any other error.

    >>> import httpx
    >>> try:
    ...     try:
    ...         raise httpx.ConnectError("All connection attempts failed")
    ...     except httpx.ConnectError as inner:
    ...         raise RuntimeError("state proposal failed") from inner
    ... except RuntimeError as outer:
    ...     print(unreachable(outer, "http://127.0.0.1:4200/api"))  # doctest: +ELLIPSIS
    Prefect server http://127.0.0.1:4200/api unreachable (ConnectError: All connection ...
    >>> unreachable(ValueError("bad row"), "http://x") is None
    True
    """
    import httpx

    for cause in _chain(err):
        if isinstance(cause, httpx.TransportError):
            problem = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        elif isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code >= 500:
            problem = f"HTTP {cause.response.status_code}"
        else:
            continue
        where = url if url is not None else api_url()
        return SftopsError(
            f"Prefect server {where} unreachable ({problem}) after the client's retries; {KEPT}"
        )
    return None


_watched: dict[str, threading.Event] = {}
cancelled_runs: set[str] = set()  # flow runs this process stopped because the API asked
CANCEL_SIGNAL = signal.SIGUSR2  # ours alone: SIGINT may be ignored (`cmd &` in a script)


class CancelledThroughApi(KeyboardInterrupt):
    """Raised in the main thread when the API cancels the run: unwinds like Ctrl-C."""


def _raise_cancelled(signum: int, frame: object) -> None:
    raise CancelledThroughApi("cancelled through the Prefect API")


def in_process_run() -> bool:
    """A flow run called in this process (`sftops run`), not started by a runner or worker
    (those set ``PREFECT__FLOW_RUN_ID`` for the process they start, and watch for cancels)."""
    return "PREFECT__FLOW_RUN_ID" not in os.environ


def watch_for_cancel(flow_run_id: str, every: float = 2.0) -> None:
    """Stop this process's run when the API cancels it (the UI's Cancel button, `prefect
    flow-run cancel`). For served runs the runner does this; a run called in-process
    (`sftops run` against a server) has no runner, so without this it ran on to the end.

    A daemon thread polls the run's state; on Cancelling it signals this process, whose handler
    raises :class:`CancelledThroughApi` (a KeyboardInterrupt) in the main thread: it unwinds
    like Ctrl-C (:func:`run_in_group` stops the stage's process group), and `sftops run` then
    marks the run Cancelled (:func:`mark_cancelled`)."""
    if flow_run_id in _watched:
        return
    if threading.current_thread() is not threading.main_thread():
        return  # a signal handler can only be set from the main thread
    signal.signal(CANCEL_SIGNAL, _raise_cancelled)
    stop = _watched[flow_run_id] = threading.Event()

    def poll() -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not stop.wait(every):
                try:
                    state = client.read_flow_run(UUID(flow_run_id)).state
                except Exception:  # the server down: the run's own calls report it
                    continue
                if state is not None and (state.is_cancelling() or state.is_cancelled()):
                    log.warning("flow run %s cancelled through the API: stopping", flow_run_id)
                    cancelled_runs.add(flow_run_id)
                    os.kill(os.getpid(), CANCEL_SIGNAL)
                    return
                if state is not None and state.is_final():
                    return

    threading.Thread(target=poll, name=f"cancel-watch-{flow_run_id[:8]}", daemon=True).start()


def mark_cancelled() -> list[str]:
    """Set the runs stopped by :func:`watch_for_cancel` to Cancelled (the engine reported the
    interruption as a crash); returns their ids."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    done = sorted(cancelled_runs)
    with get_client(sync_client=True) as client:
        for run_id in done:
            client.set_flow_run_state(
                run_id, Cancelled(message="Cancelled through the API"), force=True
            )
    return done


def interrupted() -> str:
    """The line `sftops run` ends with on Ctrl-C or a cancel through the API (after marking the
    runs :func:`watch_for_cancel` stopped Cancelled)."""
    how = "interrupted"
    if cancelled_runs:
        how = "cancelled through the Prefect API"
        try:
            mark_cancelled()
        except Exception as err:  # the server gone meanwhile: the line still says what happened
            how += f" (not marked Cancelled: {unreachable(err) or err})"
    return (
        f"{how}: every stage process of the run was stopped; a rerun restores the finished "
        "stages from the DVC cache"
    )
