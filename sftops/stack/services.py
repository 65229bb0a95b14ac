"""The long-running processes of both stacks (`sftops ui`, `sftops stack`): how they are
started, waited for and stopped.

Each service is a subprocess in a session of its own, so that signalling its process group
reaches the children it starts; its output is appended to ``<logs>/<name>.log`` after a header
line with the command only (secrets travel in the environment, which is never written). A
service is known by its pid *and* the start time of that pid, so a recycled pid is never taken
for it or signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sftops.errors import SftopsError


def tool(name: str) -> str:
    """The console script beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SftopsError(f"`{name}` not found (install the project's dependencies)")
    return found


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def service_env(prefect_home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stack's processes: ``base`` (default: this process's) with
    scripts/env.sh's settings, this interpreter's folder first on PATH, and ``PREFECT_HOME``."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_EXTRA_LOGGERS="sftops",
        DVC_NO_ANALYTICS="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def _log_header(handle: IO[bytes], cmd: Sequence[str]) -> None:
    handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
    handle.flush()


# --------------------------------------------------------------------------- pid records


def start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _reap(pid: int) -> None:
    """Collect a child that exited (when `up` and `down` run in one process, as in tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(record: Mapping[str, float]) -> bool:
    """Whether the process of a ``{"pid", "created"}`` record still runs (and is that one)."""
    import psutil

    pid = int(record["pid"])
    _reap(pid)
    started = start_time(pid)
    if started is None or abs(started - record["created"]) >= 1.0:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def stop_group(record: Mapping[str, float], timeout: float = 20.0) -> bool:
    """SIGINT, then SIGTERM, then SIGKILL to the process group of ``record``, then to any of its
    descendants that left the group (a Prefect worker starts each flow run in a session of its
    own); True if it ran. SIGINT first: the servers shut down cleanly on it."""
    import psutil

    if not is_alive(record):
        return False
    pid = int(record["pid"])
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and is_alive(record):
            time.sleep(0.2)
        if not is_alive(record):
            break
    _reap(pid)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, survivors = psutil.wait_procs(descendants, timeout=10)
    for child in survivors:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    return True


# --------------------------------------------------------------------------- services


@dataclass
class Service:
    """A started service: its name, pid record and log."""

    name: str
    pid: int
    created: float
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def record(self) -> dict[str, float]:
        return {"pid": self.pid, "created": self.created}

    @classmethod
    def recorded(cls, name: str, record: Mapping[str, float], logs: Path) -> Service:
        """A service started by another process (`sftops stack up`), from its record."""
        return cls(name, int(record["pid"]), float(record["created"]), logs / f"{name}.log")

    def alive(self) -> bool:
        if self.process is not None:  # our child: its pid cannot be reused before it is reaped
            return self.process.poll() is None
        return is_alive(self.record)

    def stop(self, timeout: float = 20.0) -> bool:
        return stop_group(self.record, timeout)

    def exit_note(self) -> str:
        code = "" if self.process is None else f" with {self.process.returncode}"
        return f"{self.name} exited{code}; {self.log}:\n{tail(self.log)}"


def launch(
    name: str, cmd: Sequence[str], *, logs: Path, cwd: Path, env: Mapping[str, str]
) -> Service:
    """Start ``cmd`` as service ``name`` (see the module docstring); returns at once."""
    log = logs / f"{name}.log"
    with log.open("ab") as handle:
        _log_header(handle, cmd)
        process = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopping it reaches its children
        )
    return Service(name, process.pid, start_time(process.pid) or time.time(), log, process)


def run_logged(
    name: str,
    cmd: Sequence[str],
    *,
    logs: Path,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
) -> None:
    """Run a one-off command to completion as :func:`launch` starts a service; raise with its
    log's tail when it fails, or stop its process group after ``timeout`` seconds and raise."""
    service = launch(name, cmd, logs=logs, cwd=cwd, env=env)
    assert service.process is not None
    what = f"`{' '.join(cmd[1:4])}`"
    try:
        code = service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.stop(timeout=5.0)
        raise SftopsError(
            f"{what} timed out after {timeout:.0f}s; {service.log}:\n{tail(service.log)}"
        ) from None
    if code != 0:
        raise SftopsError(f"{what} failed; {service.log}:\n{tail(service.log)}")


def wait_until(
    what: str, ready: Callable[[], bool], watched: Sequence[Service], timeout: float
) -> None:
    """Poll ``ready`` until it is true; raise when a watched service exits first (with its
    log's tail) or after ``timeout`` seconds. A connection error counts as not ready yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in watched:
            if not service.alive():
                raise SftopsError(f"waiting for {what}: {service.exit_note()}")
        try:
            if ready():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SftopsError(f"timed out after {timeout:.0f}s waiting for {what}")
