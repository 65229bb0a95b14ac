"""Child processes of a run, each in its own process group, stopped with the run.

A stage runs as `dvc repro` in a subprocess, which starts the stage command (`sftops train`),
which may start workers. Cancelling the run (Prefect cancel, Ctrl-C, a task timeout, SIGTERM
from a worker) must stop all of them, not only the process Prefect knows about: every child is
started in a new session (its own process group) and the group is killed when the caller is
interrupted, and at exit or on SIGTERM for any group still running.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftops.errors import SftopsError

log = logging.getLogger("sftops.mlops.processes")

GRACE_SECONDS = 5.0
_live: set[int] = set()
_lock = threading.Lock()
_handler_installed = False


def kill_group(pgid: int, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM the group, SIGKILL what is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = _monotonic() + grace
    while _monotonic() < deadline:
        if not _group_alive(pgid):
            return
        threading.Event().wait(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _monotonic() -> float:
    import time

    return time.monotonic()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of the group still answer signal 0; they are dead for our purpose.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def kill_all() -> None:
    with _lock:
        groups = list(_live)
    for pgid in groups:
        kill_group(pgid)


def _is_prefect_bridge(handler: Any) -> bool:
    """Prefect's own SIGTERM handler, installed while a flow or task runs (its "SIGTERM bridge")."""
    return callable(handler) and getattr(handler, "__module__", "").startswith("prefect.")


def _install_handlers() -> None:
    """At exit and on SIGTERM (a runner or worker cancelling the run's process, `kill`): stop
    every group still running, then do what the previous handler did (exit by default).

    Not while Prefect's SIGTERM bridge is the handler: a runner delivers a cancel only to a
    process whose handler *is* that bridge (else it acknowledges nothing and the run ends
    Crashed instead of Cancelled), and the bridge raises in the main thread, which interrupts
    :func:`run_in_group`'s wait, whose ``except`` stops the group anyway."""
    global _handler_installed
    if not _handler_installed:
        atexit.register(kill_all)
        _handler_installed = True
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "_sftops_stops_groups", False) or _is_prefect_bridge(previous):
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        kill_all()
        if callable(previous):
            previous(signum, frame)
        else:
            raise SystemExit(128 + signum)

    on_sigterm._sftops_stops_groups = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_sigterm)


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> int:
    """``proc.wait(timeout)`` in short slices. A blocking wait returns to Python only when the
    signal (Ctrl-C, a runner's SIGTERM, our own SIGINT on an API cancel) lands on this very
    thread; the kernel may hand it to any of the process's threads (Prefect runs several), and
    then the handler would only run when the stage ends. Between slices it runs at once."""
    deadline = None if timeout is None else _monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - _monotonic()
        if left is not None and left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        try:
            return proc.wait(timeout=0.2 if left is None else min(0.2, left))
        except subprocess.TimeoutExpired:
            continue


def run_in_group(
    command: Sequence[str],
    *,
    cwd: str | Path,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    what: str = "command",
    keep: str | None = None,
) -> list[str]:
    """Run ``command`` in its own process group, its output echoed as it comes. Returns the
    output lines that start with ``keep`` (e.g. DVC's "Stage '...'" status lines). Raises
    :class:`SftopsError` (one line: the last error line) on a non-zero exit or a timeout; any
    exception in the caller (cancel, Ctrl-C) kills the whole group first."""
    _install_handlers()
    proc = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _lock:
        _live.add(proc.pid)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    kept: list[str] = []

    def pump(stream: Any, echo: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            echo.write(line)
            echo.flush()
            text = line.strip()
            if text:
                tail.append(text)
                if keep is not None and text.startswith(keep):
                    kept.append(text)

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, sys.stdout), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, sys.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code = _wait(proc, timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        raise SftopsError(f"{what} timed out after {timeout:.0f}s; stopped") from None
    except BaseException:
        log.warning("%s interrupted: stopping process group %d", what, proc.pid)
        kill_group(proc.pid)
        raise
    finally:
        with _lock:
            _live.discard(proc.pid)
    # The command is done; anything it left in its group (a daemon, a worker) goes with it.
    if _group_alive(proc.pid):
        kill_group(proc.pid, grace=1.0)
    for reader in readers:
        reader.join(5)
    if code != 0:
        last = next((t for t in reversed(tail) if "error" in t.lower()), tail[-1] if tail else "")
        raise SftopsError(f"{what} failed (exit {code}): {last}")
    return kept
