"""A stage's process group is stopped with the run: on a timeout, on an exception in the caller
(cancel, Ctrl-C) and when the run's process gets SIGTERM (a Prefect cancel)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sftops.errors import SftopsError
from sftops.mlops.processes import _group_alive, run_in_group

# A parent that leaves a grandchild behind: both must go.
TWO_SLEEPERS = ["sh", "-c", "sleep 60 & echo $$ > pgid; sleep 60"]


def wait_for(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_timeout_stops_the_whole_group_with_a_one_line_error(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SftopsError, match="sleeper timed out after 1s; stopped"):
        run_in_group(TWO_SLEEPERS, cwd=tmp_path, timeout=1, what="sleeper")
    pgid = int(wait_for(tmp_path / "pgid"))
    assert not _group_alive(pgid)
    assert time.monotonic() - started < 10


def test_failure_names_the_command_and_its_last_error_line(tmp_path: Path) -> None:
    with pytest.raises(SftopsError, match=r"stage x failed \(exit 3\): ERROR: disk full"):
        run_in_group(
            ["sh", "-c", "echo 'ERROR: disk full' >&2; echo bye >&2; exit 3"],
            cwd=tmp_path,
            what="stage x",
        )


def test_sigterm_to_the_run_process_stops_its_stage_groups(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from sftops.mlops.processes import run_in_group
        run_in_group({TWO_SLEEPERS!r}, cwd={str(tmp_path)!r}, what="stage")
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    pgid = int(wait_for(tmp_path / "pgid"))
    assert _group_alive(pgid)
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=45)  # generous for a loaded machine, still short of the sleepers' 60 s
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(pgid), "the stage's processes outlived the cancelled run"
    assert run.returncode != 0


def test_under_prefect_the_sigterm_handler_stays_prefects(tmp_path: Path) -> None:
    """A Prefect runner acknowledges a cancel only while its own SIGTERM bridge is the handler
    (else the run ends Crashed, not Cancelled): a stage started inside a flow must not replace
    it."""
    from prefect.utilities.engine import _prefect_sigterm_handler, capture_sigterm

    with capture_sigterm():
        run_in_group(["true"], cwd=tmp_path, what="stage")
        assert signal.getsignal(signal.SIGTERM) is _prefect_sigterm_handler


def test_sigterm_under_prefects_bridge_still_stops_the_stage_group(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from prefect.utilities.engine import capture_sigterm
        from sftops.mlops.processes import run_in_group
        with capture_sigterm():
            run_in_group({TWO_SLEEPERS!r}, cwd={str(tmp_path)!r}, what="stage")
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    pgid = int(wait_for(tmp_path / "pgid", timeout=60))
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=45)  # generous for a loaded machine, still short of the sleepers' 60 s
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(pgid), "the stage's processes outlived the cancelled run"
    assert run.returncode != 0


def test_a_signal_landing_on_another_thread_still_stops_the_group_at_once(tmp_path: Path) -> None:
    """The kernel may hand a process-directed signal to any thread; Python runs the handler in
    the main thread only when it next runs bytecode, so a blocking wait would hold the
    KeyboardInterrupt until the stage ended."""
    script = textwrap.dedent(
        f"""
        import signal, threading
        from sftops.mlops.processes import run_in_group
        parked = threading.Event()
        helper = threading.Thread(target=parked.wait, daemon=True)
        helper.start()
        def interrupt_via_helper():
            import pathlib, time
            while not pathlib.Path({str(tmp_path / "pgid")!r}).exists():
                time.sleep(0.05)
            signal.pthread_kill(helper.ident, signal.SIGINT)
        threading.Thread(target=interrupt_via_helper, daemon=True).start()
        run_in_group({TWO_SLEEPERS!r}, cwd={str(tmp_path)!r}, what="stage")
        """
    )
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=50,
        # A Python started from a terminal handles Ctrl-C; one started by a background job
        # (CI under nohup, `cmd &`) inherits SIGINT ignored and would sleep the full 60 s.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pgid = int(wait_for(tmp_path / "pgid"))
    assert "KeyboardInterrupt" in run.stderr, run.stderr[-2000:]
    assert not _group_alive(pgid)
    assert time.monotonic() - started < 40  # not the sleepers' 60 s
