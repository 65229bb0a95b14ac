"""`sftops ui`: the local stack on 127.0.0.1 — Prefect server (UI + API), the `serve` process of
flows/deploy.py, and the MLflow UI on the project's tracking store.

Each part is a subprocess in its own process group with its log in ``.sftops/logs/``. Start
order: Prefect server (wait for ``/api/health``), serve (wait until the deployments are
registered), MLflow (wait for ``/health``). :meth:`Stack.stop` stops serve first, then the
servers: stopping the API under a serve process can leave that process hanging.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sftops.errors import SftopsError

LOG_DIR = ".sftops/logs"
DEPLOYMENTS = (
    "retrain/nightly",
    "data_refresh/manual",
    "evaluate_model/manual",
    "promote/manual",
)


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the service's process group (its own children included), then SIGKILL."""
        if self.alive():
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.handle.close()


@dataclass
class Stack:
    root: Path
    prefect_url: str
    mlflow_url: str | None
    tracking_uri: str
    services: list[Service] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.prefect_url}/api"

    def describe(self) -> str:
        lines = [
            f"Prefect UI   {self.prefect_url}  (deployments: {self.prefect_url}/deployments)",
            f"Prefect API  {self.api_url}",
            f"MLflow UI    {self.mlflow_url or '-'}  (store {self.tracking_uri})",
            f"logs         {self.root / LOG_DIR}",
        ]
        return "\n".join(lines)

    def check(self) -> None:
        """Raise if a service died (with the tail of its log)."""
        for service in self.services:
            if not service.alive():
                raise SftopsError(
                    f"{service.name} exited with {service.process.returncode}:\n"
                    + _tail(service.log)
                )

    def stop(self) -> None:
        """serve first, then the MLflow and Prefect servers (reverse start order)."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _tool(name: str) -> str:
    """The console script beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SftopsError(f"`{name}` not found (install the project's dependencies)")
    return found


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except (OSError, urllib.error.URLError):
        return None


def _post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _wait(what: str, ready: Callable[[], bool], services: list[Service], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            if not service.alive():
                raise SftopsError(
                    f"{service.name} exited with {service.process.returncode} while waiting "
                    f"for {what}:\n{_tail(service.log)}"
                )
        try:
            if ready():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SftopsError(f"timed out after {timeout:.0f}s waiting for {what}")


def _deployment_names(api_url: str) -> set[str]:
    found = _post_json(f"{api_url}/deployments/filter", {"limit": 200})
    flows = {f["id"]: f["name"] for f in _post_json(f"{api_url}/flows/filter", {"limit": 200})}
    return {f"{flows.get(d['flow_id'], '?')}/{d['name']}" for d in found}


def stack_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the stack's processes (scripts/env.sh's settings, PREFECT_HOME in
    the repository's ``.prefect``)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PREFECT_HOME"] = str(root / ".prefect")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_LOGGING_EXTRA_LOGGERS"] = "sftops"
    env["DVC_NO_ANALYTICS"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_stack(
    root: str | Path = ".",
    prefect_port: int = 4200,
    mlflow_port: int | None = 5000,
    host: str = "127.0.0.1",
    *,
    serve_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    echo: Callable[[str], None] | None = print,
) -> Stack:
    """Start the Prefect server, the serve process and the MLflow UI for the project at
    ``root``; returns when all answer (the deployments registered). ``mlflow_port=None``, or a
    tracking URI that is already a server, skips the MLflow UI. On any failure the services
    started so far are stopped before the error propagates."""
    from sftops.mlops import registry

    root = Path(root).resolve()
    logs = root / LOG_DIR
    logs.mkdir(parents=True, exist_ok=True)
    (root / ".prefect").mkdir(exist_ok=True)
    base = stack_env(root, env)
    prefect_url = f"http://{host}:{prefect_port}"
    api_url = f"{prefect_url}/api"
    base["PREFECT_API_URL"] = api_url
    uri = base.get("MLFLOW_TRACKING_URI") or registry.tracking_uri(root)
    local_store = uri.startswith("sqlite:")
    mlflow_url = f"http://{host}:{mlflow_port}" if mlflow_port and local_store else None
    stack = Stack(root, prefect_url, mlflow_url, uri)

    def launch(name: str, cmd: list[str]) -> Service:
        log = logs / f"{name}.log"
        handle = log.open("ab")
        handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        handle.flush()
        process = subprocess.Popen(
            cmd,
            cwd=root,
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches its children
        )
        service = Service(name, process, log, handle)
        stack.services.append(service)
        return service

    try:
        server = launch(
            "prefect-server",
            [_tool("prefect"), "server", "start", "--host", host, "--port", str(prefect_port)],
        )
        _wait(
            f"the Prefect server on {prefect_url}",
            lambda: _get(f"{api_url}/health") is not None,
            [server],
            timeout,
        )
        serve = launch("serve", [sys.executable, "-m", "flows.deploy", *(serve_args or [])])
        _wait(
            "the deployments to be served",
            lambda: set(DEPLOYMENTS) <= _deployment_names(api_url),
            [server, serve],
            timeout,
        )
        if mlflow_url:
            registry.prepare_local_store(uri)  # a run starting now must not race its migration
            artifacts = registry.artifact_location(uri) or str(root / registry.LOCAL_ARTIFACTS)
            mlflow = launch(
                "mlflow",
                [
                    _tool("mlflow"),
                    "server",
                    "--host",
                    host,
                    "--port",
                    str(mlflow_port),
                    "--backend-store-uri",
                    uri,
                    "--artifacts-destination",
                    artifacts,
                    "--workers",
                    "1",
                ],
            )
            _wait(
                f"the MLflow server on {mlflow_url}",
                lambda: _get(f"{mlflow_url}/health") is not None,
                [server, serve, mlflow],
                timeout,
            )
    except BaseException:
        stack.stop()
        raise
    if echo:
        echo(stack.describe())
    return stack


def run_foreground(root: str | Path = ".", **kwargs: Any) -> None:
    """`sftops ui`: start the stack, keep it up until Ctrl-C / SIGTERM (or a service dies),
    then stop it (serve first)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        stack = start_stack(root, **kwargs)
        try:
            while True:
                stack.check()
                time.sleep(2.0)
        except KeyboardInterrupt:
            print("\nstopping: serve, then the servers", flush=True)
        finally:
            stack.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
