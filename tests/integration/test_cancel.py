"""Cancelling a run stops every process it started, mid-stage, within 10 s: a `retrain` served
from a real Prefect server and cancelled through its API (as the UI's Cancel button does), and
`sftops run` interrupted with Ctrl-C (SIGINT to its foreground process group). Nothing is left
that looks like a finished output, and the next run proceeds."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from prefect.states import Cancelling

from tests.helpers import tiny_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]
STOP_WITHIN = 10.0  # seconds from the cancel to the last process of the run gone
LONG_TRAINING = {"train.max_steps": 100000}  # a stage that is still running when cancelled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, ready: Any, timeout: float, proc: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first ({proc.returncode})")
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def run_processes(workspaces: Path, flow_run_id: str | None = None) -> list[psutil.Process]:
    """Every live process of a run: its cwd or command line inside the run's workspace folder
    (`dvc repro`, `sftops <stage>`, their workers), or started for its flow run (Prefect sets
    PREFECT__FLOW_RUN_ID in the flow run's process, which its children inherit)."""
    needle = str(workspaces)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        info = proc.info
        if proc.pid == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(info["cmdline"] or [])
        mine = needle in cmdline or needle in (info["cwd"] or "")
        if not mine and flow_run_id is not None:
            with contextlib.suppress(psutil.Error):
                mine = proc.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id
        if mine:
            found.append(proc)
    return found


def stage_process(workspaces: Path, stage: str) -> psutil.Process | None:
    """The `sftops <stage>` process DVC started inside a workspace of ``workspaces``."""
    for proc in run_processes(workspaces):
        with contextlib.suppress(psutil.Error):
            args = proc.cmdline()
            if stage in args and any(Path(a).name == "sftops" or a == "sftops" for a in args):
                return proc
    return None


def is_cleanup(proc: psutil.Process) -> bool:
    """The run's own teardown after the cancel (`git worktree remove` of its workspace), which
    may take longer on a busy machine; it is checked to be gone when the run has exited."""
    with contextlib.suppress(psutil.Error):
        args = proc.cmdline()
        return not args or Path(args[0]).name == "git"  # no args: it has just exited
    return True


def wait_gone(
    workspaces: Path, flow_run_id: str | None, since: float, log: Path | None = None
) -> float:
    """Seconds from ``since`` until no process of the run is left but its teardown; fails
    after STOP_WITHIN."""
    while True:
        left = [p for p in run_processes(workspaces, flow_run_id) if not is_cleanup(p)]
        elapsed = time.monotonic() - since
        if not left:
            return elapsed
        if elapsed > STOP_WITHIN:
            described = []
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    described.append(f"{proc.pid} {' '.join(proc.cmdline())[:160]}")
            for proc in left:  # do not leave them running for the next test
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"alive {elapsed:.1f}s after the cancel: {described}\n{tail}")
        time.sleep(0.1)


def assert_nothing_looks_finished(workspaces: Path) -> None:
    """A cancelled training leaves no final model, and every checkpoint under its final name
    is whole (weights and trainer state: the resume point); temp folders do not count."""
    if not workspaces.exists():
        return
    for ws in workspaces.iterdir():
        assert not (ws / "models" / "sft" / "model.safetensors").exists(), ws
        for ckpt in ws.glob("models/checkpoints/step-*"):
            names = {p.name for p in ckpt.iterdir()}
            assert {"model.safetensors", "trainer_state.pt"} <= names, (ckpt, names)


def base_env(repo: Path, home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A tiny project, a Prefect server on a free 127.0.0.1 port and `python -m flows.deploy`
    serving its deployments (the `sftops ui` setup without the MLflow UI)."""
    repo = tiny_repo(tmp_path)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**base_env(repo, tmp_path / "prefect"), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    logs = tmp_path / "logs"
    logs.mkdir()
    started: list[subprocess.Popen[bytes]] = []

    def launch(name: str, cmd: list[str], extra: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            cmd,
            cwd=repo,
            env={**env, **extra},
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    def healthy() -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{api}/health", timeout=2) as response,
        ):
            return response.status == 200
        return False

    try:
        server = launch(
            "server",
            ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            {},
        )
        wait_until("the Prefect server", healthy, 300, server)
        serve = launch(
            "serve",
            [sys.executable, "-m", "flows.deploy", "--no-schedule"],
            {"PREFECT_API_URL": api},
        )
        yield {
            "repo": repo,
            "api": api,
            "env": {**env, "PREFECT_API_URL": api},
            "serve": serve,
            "logs": logs,
            "server": server,
            "launch": launch,
        }
    finally:
        for proc in reversed(started):
            stop(proc)


def client_for(api: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api)


def start_deployment_run(api: str, serve: Any, parameters: dict[str, Any]) -> str:
    with client_for(api) as client:
        deployment = wait_until(
            "the retrain deployment",
            lambda: _deployment(client, "retrain/nightly"),
            300,
            serve,
        )
        run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        return str(run.id)


def _deployment(client: Any, name: str) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


def state_of(api: str, run_id: str) -> str:
    with client_for(api) as client:
        return str(client.read_flow_run(run_id).state.type.value)


def test_cancelling_a_served_retrain_mid_stage_stops_every_process_of_it(
    served: dict[str, Any],
) -> None:
    repo, api, serve = served["repo"], served["api"], served["serve"]
    workspaces = repo / ".sftops" / "runs"
    run_id = start_deployment_run(api, serve, {"overrides": LONG_TRAINING})
    trainer = wait_until(
        "`sftops train` of the run", lambda: stage_process(workspaces, "train"), 900, serve
    )
    time.sleep(3)  # mid-stage: the trainer is stepping and checkpointing
    assert trainer.is_running()

    with client_for(api) as client:
        cancelled_at = time.monotonic()
        client.set_flow_run_state(run_id, Cancelling(), force=True)
    gone = wait_gone(workspaces, run_id, cancelled_at)
    final = wait_until(
        "a final state",
        lambda: (
            state_of(api, run_id) in {"CANCELLED", "CRASHED", "FAILED"} and state_of(api, run_id)
        ),
        60,
    )
    print(
        f"served retrain cancelled mid-train: every process gone {gone:.1f}s after the cancel; "
        f"state {final}"
    )
    assert final == "CANCELLED"
    wait_until("its teardown", lambda: not run_processes(workspaces, run_id), 120)
    assert_nothing_looks_finished(workspaces)

    # The next run proceeds (data stages from the cache, training from scratch) and completes.
    started = time.monotonic()
    next_id = start_deployment_run(api, serve, {})
    wait_until(
        "the next run to finish",
        lambda: state_of(api, next_id) in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"},
        1200,
        serve,
    )
    assert state_of(api, next_id) == "COMPLETED", (served["logs"] / "serve.log").read_text()[-4000:]
    print(f"next run completed in {time.monotonic() - started:.0f}s")


def test_ctrl_c_on_sftops_run_mid_stage_stops_every_process_and_the_rerun_completes(
    tmp_path: Path,
) -> None:
    repo = tiny_repo(tmp_path)
    env = base_env(repo, tmp_path / "prefect")
    workspaces = repo / ".sftops" / "runs"
    args = [a for key, value in LONG_TRAINING.items() for a in ("--set", f"{key}={value}")]
    # A terminal delivers Ctrl-C to its foreground process group: the run's own group here.
    run = subprocess.Popen(
        ["sftops", "run", *args],
        cwd=repo,
        env=env,
        stdout=(tmp_path / "run.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As in a terminal: a shell that started pytest in the background left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_until(
            "`sftops train` of the run", lambda: stage_process(workspaces, "train"), 900, run
        )
        time.sleep(3)
        interrupted_at = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        gone = wait_gone(workspaces, None, interrupted_at, tmp_path / "run.log")
        # The run's temporary Prefect API has a session of its own (sftops/stack/run_api.py):
        # the Ctrl-C leaves it up, so the run reports its end at once and exits.
        run.wait(timeout=900)
        exited = time.monotonic() - interrupted_at
        out = (tmp_path / "run.log").read_text()
        assert run_processes(workspaces) == []  # its teardown too, once it has exited
    finally:
        stop(run)  # type: ignore[arg-type]
    print(
        f"Ctrl-C mid-train: every stage process gone {gone:.1f}s after SIGINT; "
        f"`sftops run` exited after {exited:.0f}s"
    )
    assert run.returncode != 0
    assert "Traceback" not in out, out[-3000:]
    assert exited < 60, out[-3000:]  # was 136-145 s while the Ctrl-C also stopped the API
    assert_nothing_looks_finished(workspaces)

    rerun = subprocess.run(
        ["sftops", "run"], cwd=repo, env=env, capture_output=True, text=True, timeout=1200
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]


def test_cancelling_an_in_process_sftops_run_through_the_api_stops_it(tmp_path: Path) -> None:
    """`sftops run` with PREFECT_API_URL: the run shows in the UI, but no runner watches it; the
    run itself must notice the cancel, stop its stage processes and end Cancelled."""
    from tests.integration.test_outages import kill_server, start_server

    repo = tiny_repo(tmp_path)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**base_env(repo, tmp_path / "prefect"), "PREFECT_API_URL": api}
    server = start_server(port, tmp_path / "prefect", tmp_path / "server.log")
    workspaces = repo / ".sftops" / "runs"
    args = [a for key, value in LONG_TRAINING.items() for a in ("--set", f"{key}={value}")]
    run = subprocess.Popen(
        ["sftops", "run", *args],
        cwd=repo,
        env=env,
        stdout=(tmp_path / "run.log").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(
            "`sftops train` of the run", lambda: stage_process(workspaces, "train"), 900, run
        )
        time.sleep(3)
        with client_for(api) as client:
            (flow_run,) = client.read_flow_runs()
            cancelled_at = time.monotonic()
            client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
        gone = wait_gone(workspaces, None, cancelled_at, tmp_path / "run.log")
        run.wait(timeout=120)
        out = (tmp_path / "run.log").read_text()
        assert run_processes(workspaces) == []  # its teardown too, once it has exited
        final = state_of(api, str(flow_run.id))
    finally:
        stop(run)  # type: ignore[arg-type]
        kill_server(server)
    print(f"in-process run cancelled through the API: every process gone {gone:.1f}s after")
    assert run.returncode == 130, out[-3000:]
    assert "cancelled through the Prefect API" in out, out[-3000:]
    assert final == "CANCELLED"
    assert_nothing_looks_finished(workspaces)
