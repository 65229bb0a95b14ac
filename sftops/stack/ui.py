"""`sftops ui`: the local stack on 127.0.0.1 — Prefect server (UI + API), the `serve` process of
flows/deploy.py, and the MLflow UI on the project's tracking store.

Each part is a subprocess in its own process group with its log in ``.sftops/logs/``. Start
order: Prefect server (wait for ``/api/health``), serve (wait until the deployments are
registered), MLflow (wait for ``/health``). :meth:`Stack.stop` stops serve first, then the
servers: stopping the API under a serve process can leave that process hanging.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftops.errors import SftopsError
from sftops.stack import api
from sftops.stack.deployments import names
from sftops.stack.services import Service, launch, service_env, tool, wait_until

LOG_DIR = ".sftops/logs"


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
                raise SftopsError(service.exit_note())

    def stop(self) -> None:
        """serve first, then the MLflow and Prefect servers (reverse start order)."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stack_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the stack's processes (scripts/env.sh's settings, PREFECT_HOME in
    the repository's ``.prefect``)."""
    env = service_env(root / ".prefect")
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

    def start(name: str, cmd: list[str]) -> Service:
        service = launch(name, cmd, logs=logs, cwd=root, env=base)
        stack.services.append(service)
        return service

    try:
        server = start(
            "prefect-server",
            [tool("prefect"), "server", "start", "--host", host, "--port", str(prefect_port)],
        )
        wait_until(
            f"the Prefect server on {prefect_url}",
            lambda: api.healthy(f"{api_url}/health"),
            [server],
            timeout,
        )
        serve = start("serve", [sys.executable, "-m", "flows.deploy", *(serve_args or [])])
        wait_until(
            "the deployments to be served",
            lambda: set(names("process")) <= api.deployment_names(api_url),
            [server, serve],
            timeout,
        )
        if mlflow_url:
            registry.prepare_local_store(uri)  # a run starting now must not race its migration
            artifacts = registry.artifact_location(uri) or str(root / registry.LOCAL_ARTIFACTS)
            mlflow = start(
                "mlflow",
                [
                    tool("mlflow"),
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
            wait_until(
                f"the MLflow server on {mlflow_url}",
                lambda: api.healthy(f"{mlflow_url}/health"),
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
