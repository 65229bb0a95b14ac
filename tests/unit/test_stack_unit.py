"""`sftops stack` parts that need no server: the exposure rule, process bookkeeping, state."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftops.cli import app
from sftops.errors import SftopsError
from sftops.stack.team import Auth, Stack, State, _alive, _start_time, _stop_group, check_exposure


def test_stack_up_refuses_a_public_host_without_auth_and_starts_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"PATH": "/usr/bin:/bin"}
    with pytest.raises(SftopsError, match=r"refusing to bind 0\.0\.0\.0 without auth"):
        Stack(tmp_path, state, env=env, echo=lambda _: None).up(host="0.0.0.0")
    assert not state.exists()


def test_stack_up_cli_exits_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_SERVER_API_AUTH_STRING", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["stack", "up", "--host", "10.0.0.5"])
    assert result.exit_code == 1
    assert "refusing to bind 10.0.0.5 without auth" in result.output
    assert not (tmp_path / ".stack").exists()


def test_half_configured_auth_still_refuses_a_public_host() -> None:
    with pytest.raises(SftopsError):
        check_exposure("0.0.0.0", Auth("user:pw", "admin", None))
    check_exposure("0.0.0.0", Auth("user:pw", "admin", "long-enough-password"))


def test_short_mlflow_password_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": "short", "PATH": "/usr/bin:/bin"}
    with pytest.raises(SftopsError, match="at least 12 characters"):
        Stack(tmp_path, tmp_path / "state", env=env, echo=lambda _: None).up()
    assert not (tmp_path / "state").exists()


def test_state_round_trips_and_ignores_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    state = State(host="127.0.0.1", ports={"prefect": 4321}, auth={"prefect": True})
    state.save(path)
    path.write_text(path.read_text().replace('"host"', '"future": 1, "host"'))
    assert State.load(path) == state
    assert State.load(tmp_path / "missing.json") == State()


def test_stop_group_stops_the_group_and_descendants_in_other_sessions() -> None:
    # a parent in its own group whose child starts a session of its own (as a worker's flow run)
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    import psutil

    deadline = time.monotonic() + 10
    while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = psutil.Process(parent.pid).children()[0]
    record = {"pid": parent.pid, "created": _start_time(parent.pid) or 0.0}
    assert _alive(record)
    assert _stop_group("probe", record, timeout=5)
    assert not _alive(record)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_recycled_pid_is_never_signalled() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = {"pid": sleeper.pid, "created": (_start_time(sleeper.pid) or 0.0) - 100}
        assert not _alive(stale)
        assert not _stop_group("stale", stale)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
