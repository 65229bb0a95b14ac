"""Fixtures of the team-stack test: a committed git + DVC copy of the project with tiny settings,
and the stack (`sftops.stack.team.Stack`) started on it with basic auth on both servers.

The state folder lives under a world-traversable temporary folder: when the tests run as root,
PostgreSQL runs as the `postgres` account, which cannot enter pytest's private tmp folders.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MLFLOW_PASSWORD, MLFLOW_USER, PREFECT_AUTH, tiny_repo

STACK_TINY = {"augment.enabled": False, "train.use_augmented": False}


@pytest.fixture(scope="module")
def stack_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="sftops-stack-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def stack_project(stack_base: Path) -> dict[str, Any]:
    """A committed copy of the project whose params.yaml trains a tiny Llama in seconds."""
    repo = tiny_repo(stack_base, **STACK_TINY)
    return {"repo": repo, "state": stack_base / "state"}


def stack_env() -> dict[str, str]:
    env = dict(os.environ)
    # the worker's flow runs import the clone's code, not this checkout's
    env.pop("PYTHONPATH", None)
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)
    env.update(
        PREFECT_SERVER_API_AUTH_STRING=PREFECT_AUTH,
        MLFLOW_AUTH_ADMIN_USERNAME=MLFLOW_USER,
        MLFLOW_AUTH_ADMIN_PASSWORD=MLFLOW_PASSWORD,
    )
    return env


@pytest.fixture(scope="module")
def stack(stack_project: dict[str, Any]) -> Iterator[Any]:
    """The stack on the copy; at teardown it is stopped and nothing it started may remain."""
    import time

    from sftops.stack.team import Stack

    running = Stack(stack_project["repo"], stack_project["state"], env=stack_env())
    started = time.monotonic()
    running.up(timeout=300)
    print(f"stack up (first start, initdb included): {time.monotonic() - started:.1f}s")
    try:
        yield running
    finally:
        # as `sftops stack down` would: a new Stack that knows only the state folder
        final = Stack(stack_project["repo"], stack_project["state"], env=stack_env())
        records = dict(final.state.processes)
        final.down()
        leftovers = leftover_processes(final, records)
        assert not leftovers, f"still running after `down`: {leftovers}"
        assert set(final.health().values()) == {"down"}


def leftover_processes(stack: Any, records: dict[str, dict[str, float]]) -> list[str]:
    """What of the stack still runs: recorded pids, PostgreSQL on its data folder, listeners on
    its ports."""
    import psutil

    from sftops.stack.services import is_alive
    from sftops.stack.settings import port_free

    left = [f"{name} (pid {int(rec['pid'])})" for name, rec in records.items() if is_alive(rec)]
    data = str(stack.paths.pg_data)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if data in cmdline:
            left.append(f"pid {proc.info['pid']}: {cmdline[:120]}")
    for name, port in stack.state.ports.items():
        if not port_free(port):
            left.append(f"port {port} ({name}) still bound")
    return left


@pytest.fixture
def leftovers() -> Any:
    """:func:`leftover_processes`, for the tests (a test module does not import this one)."""
    return leftover_processes
