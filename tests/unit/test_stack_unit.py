"""`sftops stack` parts that need no server: the exposure rule, process bookkeeping, state."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftops.cli import app
from sftops.errors import SftopsError
from sftops.stack.services import is_alive, start_time, stop_group
from sftops.stack.settings import Auth, State, check_exposure
from sftops.stack.team import Stack


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
    record = {"pid": parent.pid, "created": start_time(parent.pid) or 0.0}
    assert is_alive(record)
    assert stop_group(record, timeout=5)
    assert not is_alive(record)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_recycled_pid_is_never_signalled() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = {"pid": sleeper.pid, "created": (start_time(sleeper.pid) or 0.0) - 100}
        assert not is_alive(stale)
        assert not stop_group(stale)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_wait_until_reports_a_service_that_died_with_its_log(tmp_path: Path) -> None:
    from sftops.stack.services import launch, wait_until

    code = "print('bad config: port taken'); raise SystemExit(3)"
    service = launch(
        "probe", [sys.executable, "-c", code], logs=tmp_path, cwd=tmp_path, env=os.environ
    )
    with pytest.raises(SftopsError) as err:
        wait_until("the probe", lambda: False, [service], timeout=30)
    assert "probe exited with 3" in str(err.value)
    assert "bad config: port taken" in str(err.value)
    log = (tmp_path / "probe.log").read_text()
    assert log.startswith("\n--- ") and sys.executable in log.splitlines()[1]


def test_wait_until_returns_once_ready_and_times_out_otherwise(tmp_path: Path) -> None:
    from sftops.stack.services import launch, wait_until

    calls = iter([False, OSError("refused"), True])

    def ready() -> bool:
        value = next(calls)
        if isinstance(value, Exception):
            raise value  # a connection error counts as not ready yet
        return value

    sleeper = launch(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(30)"],
        logs=tmp_path,
        cwd=tmp_path,
        env=os.environ,
    )
    try:
        wait_until("ready", ready, [sleeper], timeout=30)
        with pytest.raises(SftopsError, match="timed out after 1s waiting for never"):
            wait_until("never", lambda: False, [sleeper], timeout=1)
    finally:
        assert sleeper.stop(timeout=5)
    assert not sleeper.alive()


def test_run_logged_raises_with_the_tail_of_its_log(tmp_path: Path) -> None:
    from sftops.stack.services import run_logged

    cmd = [sys.executable, "-c", "import sys; print('deploy failed: no pool'); sys.exit(1)"]
    with pytest.raises(SftopsError, match="deploy failed: no pool"):
        run_logged("deploy", cmd, logs=tmp_path, cwd=tmp_path, env=os.environ, timeout=30)
    ok = [sys.executable, "-c", "print('ok')"]
    run_logged("deploy", ok, logs=tmp_path, cwd=tmp_path, env=os.environ, timeout=30)
    assert (tmp_path / "deploy.log").read_text().count("\n--- ") == 2


def test_run_logged_stops_a_command_that_runs_past_its_timeout(tmp_path: Path) -> None:
    import psutil

    from sftops.stack.services import run_logged

    code = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)"
    cmd = [sys.executable, "-c", code]
    with pytest.raises(SftopsError, match="timed out after 1s"):
        run_logged("slow", cmd, logs=tmp_path, cwd=tmp_path, env=os.environ, timeout=1)
    pid = int((tmp_path / "slow.log").read_text().split("pid ")[1].split()[0])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_workers_runs_share_the_checkouts_model_cache(tmp_path: Path) -> None:
    """Every run is a fresh clone: the worker gets SFTOPS_CACHE_DIR (the checkout's .cache, or
    the one already configured), so the base model is not dequantised again per run."""
    env = {"PATH": "/usr/bin:/bin"}
    for given, wanted in ((None, str(tmp_path.resolve() / ".cache")), ("/srv/c", "/srv/c")):
        extra = {"SFTOPS_CACHE_DIR": given} if given else {}
        stack = Stack(tmp_path, tmp_path / "state", env={**env, **extra}, echo=lambda _: None)
        stack.state.ports.update(prefect=1, mlflow=2, s3=3)  # as `up` chose them
        assert stack.client_env()["SFTOPS_CACHE_DIR"] == wanted
