"""`sftops stack up|down|status`: the team setup on one server.

PostgreSQL (its own cluster in ``.stack/pg``), an S3-compatible object store (moto's server),
the Prefect server on PostgreSQL, the MLflow tracking server on PostgreSQL with proxied
artifacts in the object store, and a Prefect worker on a ``process`` work pool running the
deployments of ``infra/prefect.yaml`` (each flow run clones the project at a commit).

Everything lives in one state folder (``.stack/``, or ``SFTOPS_STACK_DIR``): ``stack.json``
(ports, pids), ``logs/``, ``pg/``, the object store's snapshot ``s3/`` and the DVC cache the
worker's clones share. ``down`` stops only the processes recorded there (pid and start time
must both match, so a recycled pid is never signalled).

The parts: ``settings`` (paths, ports, URLs, the auth rule; credentials from the environment
only, see there), ``install``, ``postgres``, ``objectstore``, ``servers`` (command lines),
``services`` (starting, waiting for and stopping processes, shared with `sftops ui`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sftops.errors import SftopsError
from sftops.stack import api, servers
from sftops.stack.deployments import PREFECT_YAML, names
from sftops.stack.install import ensure_installed
from sftops.stack.objectstore import ObjectStore
from sftops.stack.postgres import Postgres
from sftops.stack.services import Service, launch, run_logged, service_env, tool, wait_until
from sftops.stack.settings import (
    DVC_BUCKET,
    LOOPBACK,
    MLFLOW_BUCKET,
    POOL,
    Auth,
    StackPaths,
    State,
    Urls,
    check_exposure,
    client_host,
    free_port,
    port_free,
    s3_credentials,
    urls,
)


class Stack:
    """Start, stop and inspect the stack of one project (see the module docstring)."""

    def __init__(
        self,
        root: str | Path = ".",
        state_dir: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.paths = StackPaths.for_project(root, state_dir)
        self.env = dict(os.environ if env is None else env)
        self.auth = Auth.from_env(self.env)
        self.echo = echo
        self.state = State.load(self.paths.state_file)

    # ---------------------------------------------------------------- derived settings

    @property
    def s3_endpoint(self) -> str:
        external = self.env.get("SFTOPS_S3_ENDPOINT")
        return external or f"http://{LOOPBACK}:{self.state.ports['s3']}"

    @property
    def urls(self) -> Urls:
        return urls(self.state, self.env.get("SFTOPS_S3_ENDPOINT"))

    @property
    def objectstore(self) -> ObjectStore:
        return ObjectStore(self.s3_endpoint, s3_credentials(self.env))

    @property
    def postgres(self) -> Postgres:
        return Postgres(self.paths, self.state.ports.get("postgres", 0), self.echo)

    @property
    def prefect_client_auth(self) -> str | None:
        return self.env.get("PREFECT_API_AUTH_STRING") or self.auth.prefect

    @property
    def mlflow_client_auth(self) -> str | None:
        user = self.env.get("MLFLOW_TRACKING_USERNAME") or self.auth.mlflow_user
        password = self.env.get("MLFLOW_TRACKING_PASSWORD") or self.auth.mlflow_password
        return f"{user}:{password}" if password else None

    def base_env(self) -> dict[str, str]:
        env = service_env(self.paths.prefect_home, self.env)
        env.update(s3_credentials(self.env))
        return env

    def client_env(self) -> dict[str, str]:
        """What a client of the stack (the worker, a test, a shell) needs to use it."""
        env = self.base_env()
        u = self.urls
        env.update(
            PREFECT_API_URL=u.prefect_api,
            MLFLOW_TRACKING_URI=u.mlflow,
            SFTOPS_S3_ENDPOINT=u.s3,
            SFTOPS_DVC_CACHE=str(self.paths.dvc_cache),
            # every run's fresh clone reuses the checkout's base model, WordNet, embeddings
            SFTOPS_CACHE_DIR=self.env.get("SFTOPS_CACHE_DIR") or str(self.paths.root / ".cache"),
        )
        if self.prefect_client_auth:
            env["PREFECT_API_AUTH_STRING"] = self.prefect_client_auth
        if self.mlflow_client_auth:
            user, password = self.mlflow_client_auth.split(":", 1)
            env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
        return env

    def service(self, name: str) -> Service:
        """A service `up` started, from its record in ``stack.json``."""
        return Service.recorded(name, self.state.processes[name], self.paths.logs)

    # ---------------------------------------------------------------- public commands

    def running(self) -> dict[str, bool]:
        alive = {name: self.service(name).alive() for name in self.state.processes}
        alive["postgres"] = self.postgres.alive()
        return alive

    def up(self, host: str = LOOPBACK, timeout: float = 240.0, workers: int = 2) -> Urls:
        """Start whatever is not running; returns once every service answers."""
        check_exposure(host, self.auth)
        self.auth.validate()
        started = time.monotonic()
        pg_bin = ensure_installed(self.paths.root, self.echo)
        for folder in (self.paths.logs, self.paths.prefect_home, self.paths.dvc_cache):
            folder.mkdir(parents=True, exist_ok=True)
        alive = self.running()
        if any(alive.values()) and self.state.host != host:
            raise SftopsError(
                f"the stack runs on {self.state.host}; `sftops stack down` before changing --host"
            )
        self.state.host = host
        if not alive.get("prefect-server"):
            self.state.auth["prefect"] = bool(self.auth.prefect)
        if not alive.get("mlflow"):
            self.state.auth["mlflow"] = bool(self.auth.mlflow_password)
        self._choose_ports(alive)
        self.state.save(self.paths.state_file)
        timings: dict[str, float] = {}
        mark = time.monotonic()

        def step(name: str) -> None:
            nonlocal mark
            timings[name] = round(time.monotonic() - mark, 1)
            mark = time.monotonic()

        try:
            if not alive.get("postgres"):
                self.postgres.start(pg_bin)
            self.postgres.create_databases(pg_bin)
            step("postgres")
            if not alive.get("s3") and not self.env.get("SFTOPS_S3_ENDPOINT"):
                self._start_s3(timeout)
            self.objectstore.ensure_buckets()
            step("s3")
            # both servers start at once: each needs only PostgreSQL and the object store
            if not alive.get("prefect-server"):
                self._launch("prefect-server", *servers.prefect_server(*self._server_args()))
            if not alive.get("mlflow"):
                self._start_mlflow()
            self._wait_healthy("prefect-server", f"{self.urls.prefect_api}/health", timeout)
            step("prefect-server")
            self._wait_healthy("mlflow", f"{self.urls.mlflow}/health", timeout)
            step("mlflow")
            self._deploy(timeout)
            step("deploy")
            if not alive.get("worker"):
                self._start_worker(timeout, workers)
            step("worker")
        except BaseException:
            self.echo("start failed: stopping what was started")
            self.down(quiet=True)
            raise
        self.state.started = time.time()
        self.state.startup_seconds = round(time.monotonic() - started, 1)
        self.state.timings = timings
        self.state.save(self.paths.state_file)
        self.echo(self.describe())
        return self.urls

    def down(self, quiet: bool = False) -> list[str]:
        """Stop what this stack started (worker first, PostgreSQL last); returns their names."""
        stopped: list[str] = []
        for name in ("worker", "prefect-server", "mlflow", "s3"):
            if name not in self.state.processes:
                continue
            service = self.service(name)
            if name == "s3" and service.alive():
                try:  # moto keeps objects in memory: `up` loads this snapshot back
                    self.objectstore.snapshot(self.paths.s3_snapshot)
                except Exception as err:
                    self.echo(f"object store snapshot failed: {type(err).__name__}: {err}")
            if service.stop():
                stopped.append(name)
        if self.postgres.stop():
            stopped.append("postgres")
        self.state.processes = {}
        if self.paths.state.exists():
            self.state.save(self.paths.state_file)
        if not quiet:
            self.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return stopped

    def health(self) -> dict[str, str]:
        """One word per service: ok, down, or the HTTP status that answered."""
        alive = self.running()
        report: dict[str, str] = {"postgres": "ok" if alive.get("postgres") else "down"}
        if not self.state.ports:
            return {**report, "s3": "down", "prefect-server": "down", "mlflow": "down"}
        u = self.urls
        checks = {
            "s3": (f"{u.s3}/", None),
            "prefect-server": (f"{u.prefect_api}/health", self.prefect_client_auth),
            "mlflow": (f"{u.mlflow}/health", self.mlflow_client_auth),
        }
        for name, (url, auth) in checks.items():
            code, _ = api.get(url, auth)
            report[name] = "ok" if 200 <= code < 300 else ("down" if code == 0 else str(code))
        report["worker"] = "ok" if alive.get("worker") else "down"
        return report

    def describe(self) -> str:
        u = self.urls
        prefect_auth = "basic auth" if self.state.auth.get("prefect") else "no auth"
        mlflow_auth = "basic-auth app" if self.state.auth.get("mlflow") else "no auth"
        lines = [
            f"Prefect UI/API  {u.prefect}  ({prefect_auth}; API {u.prefect_api})",
            f"MLflow          {u.mlflow}  ({mlflow_auth})",
            f"object store    {u.s3}  (buckets {MLFLOW_BUCKET}, {DVC_BUCKET})",
            f"PostgreSQL      {LOOPBACK}:{self.state.ports.get('postgres')}  "
            f"(socket {self.paths.pg_socket})",
            f"work pool       {POOL} (process)  deployments: {', '.join(names('process'))}",
            f"logs, pids      {self.paths.logs}, {self.paths.state_file}",
        ]
        if self.state.startup_seconds:
            steps = ", ".join(f"{k} {v:.0f}s" for k, v in self.state.timings.items())
            lines.append(f"started in      {self.state.startup_seconds:.1f}s ({steps})")
        lines.append(
            f"use it:         export PREFECT_API_URL={u.prefect_api} MLFLOW_TRACKING_URI={u.mlflow}"
        )
        return "\n".join(lines)

    # ---------------------------------------------------------------- parts

    def _choose_ports(self, alive: Mapping[str, bool]) -> None:
        bind = {"postgres": LOOPBACK, "s3": LOOPBACK}
        for name in ("postgres", "s3", "prefect", "mlflow"):
            host = bind.get(name, client_host(self.state.host))
            service = {"prefect": "prefect-server"}.get(name, name)
            port = self.state.ports.get(name)
            if port and (alive.get(service) or port_free(port, host)):
                continue
            self.state.ports[name] = free_port(host)

    def _launch(self, name: str, cmd: list[str], env: Mapping[str, str]) -> Service:
        service = launch(name, cmd, logs=self.paths.logs, cwd=self.paths.root, env=env)
        self.state.processes[name] = service.record
        self.state.save(self.paths.state_file)
        return service

    def _server_args(self) -> tuple[StackPaths, State, Auth, dict[str, str]]:
        return self.paths, self.state, self.auth, self.base_env()

    def _wait_healthy(self, name: str, url: str, timeout: float) -> None:
        auth = self.mlflow_client_auth if name == "mlflow" else self.prefect_client_auth
        wait_until(
            f"{name} on {url}", lambda: api.healthy(url, auth), [self.service(name)], timeout
        )

    def _start_s3(self, timeout: float) -> None:
        service = self._launch("s3", servers.object_store(self.state), self.base_env())
        url = f"http://{LOOPBACK}:{self.state.ports['s3']}/"
        wait_until("the object store", lambda: api.healthy(url), [service], timeout)
        self.objectstore.restore(self.paths.s3_snapshot)

    def _start_mlflow(self) -> None:
        paths, state, auth, env = self._server_args()
        self._launch("mlflow", *servers.mlflow_server(paths, state, auth, self.s3_endpoint, env))

    def _commit(self) -> str:
        def git(*args: str) -> subprocess.CompletedProcess[str]:
            cmd = ["git", *args]
            return subprocess.run(
                cmd, cwd=self.paths.root, capture_output=True, text=True, check=False
            )

        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            raise SftopsError(
                "the project is not a git checkout with a commit", file=self.paths.root
            )
        if git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            self.echo("note: uncommitted changes are not in the worker's clone (commit first)")
        return head.stdout.strip()

    def _deploy(self, timeout: float) -> None:
        """The work pool and the process deployments of infra/prefect.yaml, pinned to HEAD."""
        env = self.client_env()
        env["SFTOPS_REPO"] = self.env.get("SFTOPS_REPO") or self.paths.root.as_uri()
        env["SFTOPS_COMMIT"] = self._commit()
        project = self.paths.root / PREFECT_YAML
        wanted = {
            "repo": env["SFTOPS_REPO"],
            "commit": env["SFTOPS_COMMIT"],
            "project_file": hashlib.sha256(project.read_bytes()).hexdigest(),
        }
        api_url, auth = self.urls.prefect_api, self.prefect_client_auth
        if self.state.deployed == wanted and set(names()) <= api.deployment_names(api_url, auth):
            self.echo(f"deployments already at {wanted['commit'][:12]}: not redeployed")
            return
        prefect = tool("prefect")
        pool = [prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"]
        deploy = [prefect, "--no-prompt", "deploy", "--prefect-file", str(PREFECT_YAML)]
        deploy += [arg for name in names() for arg in ("--name", name)]
        for cmd in (pool, deploy):
            run_logged(
                "deploy", cmd, logs=self.paths.logs, cwd=self.paths.root, env=env, timeout=timeout
            )
        self.state.deployed = wanted

    def _start_worker(self, timeout: float, workers: int) -> None:
        launched = datetime.now(UTC)
        service = self._launch("worker", *servers.worker(workers, self.client_env()))
        api_url, auth = self.urls.prefect_api, self.prefect_client_auth

        def online() -> bool:
            # a heartbeat of this worker, not the last one recorded before a restart
            found = api.call(f"{api_url}/work_pools/{POOL}/workers/filter", {}, auth)
            return any(
                w.get("status") == "ONLINE"
                and datetime.fromisoformat(w["last_heartbeat_time"]) >= launched
                for w in found
                if w.get("last_heartbeat_time")
            )

        wait_until("the worker to come online", online, [service], timeout)
