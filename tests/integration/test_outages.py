"""The Prefect server going down during `sftops run` (``PREFECT_API_URL`` set): the client retries,
then the run fails with one line naming the server; what the stages produced stays in the DVC
cache, and a rerun once the server is back completes, restoring those stages instead of
recomputing them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import tiny_repo
from tests.integration.test_cancel import free_port, stage_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]


def start_server(port: int, home: Path, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def healthy() -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response,
        ):
            return response.status == 200
        return False

    wait_until("the Prefect server", healthy, 300, server)
    return server


def kill_server(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(30)


def test_prefect_server_down_mid_run_fails_in_one_line_and_the_rerun_reuses_the_stages(
    tmp_path: Path,
) -> None:
    repo = tiny_repo(tmp_path)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    server = start_server(port, home, tmp_path / "server.log")
    run = subprocess.Popen(
        ["sftops", "run", "--no-train"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Down while `clean` computes: ingest is finished (and cached), clean is mid-stage.
        wait_until(
            "`sftops clean`", lambda: stage_process(repo / ".sftops" / "runs", "clean"), 900, run
        )
        kill_server(server)
        down_at = time.monotonic()
        _, err = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(30)
        kill_server(server)
    failed_after = time.monotonic() - down_at
    print(f"server down: the run failed {failed_after:.0f}s later (exit {run.returncode})")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert run.returncode == 1, err[-4000:]
    assert len(errors) == 1, err[-4000:]
    assert errors[0].startswith(f"error: Prefect server {api} unreachable"), errors
    # (Prefect's own loggers still print what failed before it, tracebacks included.)

    server = start_server(port, home, tmp_path / "server.log")  # back, same database
    try:
        back = subprocess.run(
            ["sftops", "run", "--no-train"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        kill_server(server)
    logs = back.stdout + back.stderr
    assert back.returncode == 0, logs[-4000:]
    assert "Stage 'ingest' is cached - skipping run" in logs  # restored, not recomputed
