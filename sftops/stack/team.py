"""`sftops stack up|down|status`: the team setup on one server.

PostgreSQL (its own cluster in ``.stack/pg``), an S3-compatible object store (moto's server),
the Prefect server on PostgreSQL, the MLflow tracking server on PostgreSQL with proxied
artifacts in the object store, and a Prefect worker on a ``process`` work pool running the
deployments of ``infra/prefect.yaml`` (each flow run clones the project at a commit).

Everything lives in one state folder (``.stack/``, or ``SFTOPS_STACK_DIR``): ``stack.json``
(ports, pids), ``logs/``, ``pg/``, the object store's snapshot ``s3/`` and the DVC cache the
worker's clones share. ``down`` stops only the processes recorded there (pid and start time
must both match, so a recycled pid is never signalled).

Credentials come from the environment only and never reach a command line or a log:

- PostgreSQL is reached over its unix socket (``trust``, socket folder mode 0700), so the
  stack needs no database password; TCP on 127.0.0.1 asks for one (scram), set none by default.
- ``PREFECT_SERVER_API_AUTH_STRING`` (``user:password``) turns on Prefect's basic auth; clients
  use ``PREFECT_API_AUTH_STRING`` (defaults to the same value).
- ``MLFLOW_AUTH_ADMIN_PASSWORD`` (and ``MLFLOW_AUTH_ADMIN_USERNAME``, default ``admin``) turns
  on MLflow's ``basic-auth`` app; clients use ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``.
- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` for the object store. The built-in moto
  store checks no credentials and always binds 127.0.0.1; ``SFTOPS_S3_ENDPOINT`` points the
  stack at an external S3 / MinIO instead.

A host other than 127.0.0.1 (``--host``) is refused unless both servers have auth configured.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import importlib.util
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sftops.errors import SftopsError

STATE_DIR = ".stack"
POOL = "sftops"
MLFLOW_BUCKET = "sftops-mlflow"
DVC_BUCKET = "sftops-dvc"
DVC_REMOTE = "objectstore"
DEPLOYMENTS = (
    "retrain/nightly",
    "data_refresh/manual",
    "evaluate_model/manual",
    "promote/manual",
)
DATABASES = {"prefect": "prefect", "mlflow": "mlflow", "mlflow_auth": "mlflow"}
# Python modules the stack needs beyond the base install, and the pip requirement of each.
PY_REQUIREMENTS = {
    "asyncpg": "asyncpg",
    "psycopg2": "psycopg2-binary",
    "moto": "moto[server]",
    "boto3": "boto3",
    "dvc_s3": "dvc-s3",
    "flask_wtf": "Flask-WTF",  # MLflow's basic-auth app
}
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Auth:
    """Basic-auth settings read from the environment (None: that server runs without)."""

    prefect: str | None  # "user:password"
    mlflow_user: str
    mlflow_password: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Auth:
        return cls(
            prefect=env.get("PREFECT_SERVER_API_AUTH_STRING") or None,
            mlflow_user=env.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin",
            mlflow_password=env.get("MLFLOW_AUTH_ADMIN_PASSWORD") or None,
        )

    @property
    def complete(self) -> bool:
        return bool(self.prefect and ":" in self.prefect and self.mlflow_password)


def is_loopback(host: str) -> bool:
    """
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: Auth) -> None:
    """Refuse to bind the servers beyond this machine without basic auth on both.

    >>> check_exposure("127.0.0.1", Auth(None, "admin", None))
    >>> check_exposure("0.0.0.0", Auth("u:p", "admin", "pw"))
    >>> check_exposure("0.0.0.0", Auth(None, "admin", "pw"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sftops.errors.SftopsError: refusing to bind 0.0.0.0 without auth: ...
    """
    if is_loopback(host) or auth.complete:
        return
    raise SftopsError(
        f"refusing to bind {host} without auth: set PREFECT_SERVER_API_AUTH_STRING "
        "(user:password) and MLFLOW_AUTH_ADMIN_PASSWORD, or keep --host 127.0.0.1"
    )


def client_host(host: str) -> str:
    """The address clients on this machine use for a server bound to ``host``.

    >>> client_host("0.0.0.0"), client_host("10.1.2.3")
    ('127.0.0.1', '10.1.2.3')
    """
    return LOOPBACK if host in ("0.0.0.0", "::", "") else host


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class State:
    """What ``stack.json`` records: ports (kept across restarts), host, and the processes
    started (pid plus start time, so that ``down`` never signals a recycled pid)."""

    host: str = LOOPBACK
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    started: float = 0.0
    startup_seconds: float = 0.0
    auth: dict[str, bool] = field(default_factory=dict)  # which servers ask for a password
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step of the last `up`
    deployed: dict[str, str] = field(default_factory=dict)  # commit + project file hash

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        tmp.replace(path)


@dataclass
class StackPaths:
    root: Path
    state: Path

    @classmethod
    def for_project(cls, root: str | Path, state: str | Path | None = None) -> StackPaths:
        root = Path(root).resolve()
        folder = state or os.environ.get("SFTOPS_STACK_DIR") or root / STATE_DIR
        return cls(root, Path(folder).resolve())

    @property
    def state_file(self) -> Path:
        return self.state / "stack.json"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pg_data(self) -> Path:
        return self.state / "pg" / "data"

    @property
    def pg_socket(self) -> Path:
        return self.state / "pg" / "run"

    @property
    def s3_snapshot(self) -> Path:
        return self.state / "s3"

    @property
    def dvc_cache(self) -> Path:
        return self.state / "dvc-cache"

    @property
    def prefect_home(self) -> Path:
        return self.state / "prefect"


@dataclass(frozen=True)
class Urls:
    prefect: str
    mlflow: str
    s3: str

    @property
    def prefect_api(self) -> str:
        return f"{self.prefect}/api"


def urls(state: State, s3_endpoint: str | None = None) -> Urls:
    host = client_host(state.host)
    return Urls(
        prefect=f"http://{host}:{state.ports['prefect']}",
        mlflow=f"http://{host}:{state.ports['mlflow']}",
        s3=s3_endpoint or f"http://{LOOPBACK}:{state.ports['s3']}",
    )


def pg_url(paths: StackPaths, port: int, db: str, user: str, driver: str = "") -> str:
    """A socket URL (no password: the socket folder is private to the stack's user).

    >>> pg_url(StackPaths(Path("/p"), Path("/p/.stack")), 5433, "mlflow", "mlflow")
    'postgresql://mlflow@/mlflow?host=/p/.stack/pg/run&port=5433'
    """
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{user}@/{db}?host={paths.pg_socket}&port={port}"


# --------------------------------------------------------------------------- installing


def missing_python_packages() -> list[str]:
    return [req for mod, req in PY_REQUIREMENTS.items() if importlib.util.find_spec(mod) is None]


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` / ``pg_ctl`` (Debian keeps them off PATH), newest first."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def ensure_installed(root: Path, echo: Callable[[str], None]) -> Path:
    """Install what is missing: the Debian ``postgresql`` package, and the Python packages of
    :data:`PY_REQUIREMENTS` (pinned by the project's constraints.txt). Returns the PostgreSQL
    bin folder."""
    if postgres_bin() is None:
        if os.geteuid() != 0 and not shutil.which("sudo"):
            raise SftopsError("PostgreSQL missing: apt-get install postgresql (needs root)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        echo("installing PostgreSQL (apt-get install postgresql)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            [*sudo, "apt-get", "update", "-qq"],
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        ):
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    missing = missing_python_packages()
    if missing:
        echo(f"installing {', '.join(missing)}")
        constraints = root / "constraints.txt"
        cmd = [sys.executable, "-m", "pip", "install", "-q"]
        if constraints.exists():
            cmd += ["-c", str(constraints)]
        subprocess.run([*cmd, *missing], check=True)
        importlib.invalidate_caches()
    found = postgres_bin()
    if found is None:
        raise SftopsError("PostgreSQL binaries (pg_ctl) not found after installing postgresql")
    return found


# --------------------------------------------------------------------------- processes


def _as_db_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` account then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _alive(record: Mapping[str, float]) -> bool:
    import psutil

    pid = int(record["pid"])
    _reap(pid)
    started = _start_time(pid)
    if started is None or abs(started - record["created"]) >= 1.0:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _stop_group(name: str, record: Mapping[str, float], timeout: float = 20.0) -> bool:
    """SIGINT, then SIGTERM, then SIGKILL to the process group we started, then to any of its
    descendants that left the group (the worker starts each flow run in a session of its own);
    True if it ran."""
    import psutil

    if not _alive(record):
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
        while time.monotonic() < deadline and _alive(record):
            time.sleep(0.2)
        if not _alive(record):
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


def _reap(pid: int) -> None:
    """Collect a child that exited (when `up` and `down` run in one process, as in tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _get(url: str, auth: str | None = None, timeout: float = 3.0) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers. ``auth``: ``user:password``."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), b""
    except (OSError, ValueError):
        return 0, b""


def _api(
    url: str, payload: Any, auth: str | None = None, method: str = "POST", timeout: float = 10.0
) -> Any:
    request = urllib.request.Request(
        url,
        data=None if payload is None else json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    if auth:
        request.add_header("Authorization", f"Basic {base64.b64encode(auth.encode()).decode()}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SftopsError(f"`{name}` not found (install the project's dependencies)")
    return found


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
    def prefect_client_auth(self) -> str | None:
        return self.env.get("PREFECT_API_AUTH_STRING") or self.auth.prefect

    @property
    def mlflow_client_auth(self) -> str | None:
        user = self.env.get("MLFLOW_TRACKING_USERNAME") or self.auth.mlflow_user
        password = self.env.get("MLFLOW_TRACKING_PASSWORD") or self.auth.mlflow_password
        return f"{user}:{password}" if password else None

    def _s3_credentials(self) -> dict[str, str]:
        # moto accepts any key; these placeholders are not secrets (the store binds 127.0.0.1)
        return {
            "AWS_ACCESS_KEY_ID": self.env.get("AWS_ACCESS_KEY_ID") or "sftops-local",
            "AWS_SECRET_ACCESS_KEY": self.env.get("AWS_SECRET_ACCESS_KEY") or "sftops-local",
            "AWS_DEFAULT_REGION": self.env.get("AWS_DEFAULT_REGION") or "us-east-1",
        }

    def base_env(self) -> dict[str, str]:
        env = dict(self.env)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            PREFECT_HOME=str(self.paths.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_EXTRA_LOGGERS="sftops",
            DVC_NO_ANALYTICS="1",
            HF_HUB_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONUNBUFFERED="1",
        )
        env.update(self._s3_credentials())
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
        )
        if self.prefect_client_auth:
            env["PREFECT_API_AUTH_STRING"] = self.prefect_client_auth
        if self.mlflow_client_auth:
            user, password = self.mlflow_client_auth.split(":", 1)
            env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
        return env

    # ---------------------------------------------------------------- public commands

    def running(self) -> dict[str, bool]:
        alive = {name: _alive(rec) for name, rec in self.state.processes.items()}
        pid_file = self.paths.pg_data / "postmaster.pid"
        alive["postgres"] = pid_file.exists() and self._postgres_alive()
        return alive

    def up(self, host: str = LOOPBACK, timeout: float = 240.0, workers: int = 2) -> Urls:
        """Start whatever is not running; returns once every service answers."""
        check_exposure(host, self.auth)
        if self.auth.mlflow_password is not None and len(self.auth.mlflow_password) < 12:
            raise SftopsError("MLFLOW_AUTH_ADMIN_PASSWORD: MLflow wants at least 12 characters")
        if self.auth.prefect is not None and ":" not in self.auth.prefect:
            raise SftopsError("PREFECT_SERVER_API_AUTH_STRING must be user:password")
        started = time.monotonic()
        pg_bin = ensure_installed(self.paths.root, self.echo)
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.paths.prefect_home.mkdir(parents=True, exist_ok=True)
        self.paths.dvc_cache.mkdir(parents=True, exist_ok=True)
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
                self._start_postgres(pg_bin)
            self._create_databases(pg_bin)
            step("postgres")
            if not alive.get("s3") and not self.env.get("SFTOPS_S3_ENDPOINT"):
                self._start_s3(timeout)
            self._ensure_buckets()
            step("s3")
            # both servers start at once: each needs only PostgreSQL and the object store
            if not alive.get("prefect-server"):
                self._start_prefect()
            if not alive.get("mlflow"):
                self._start_mlflow()
            self._wait_prefect(timeout)
            step("prefect-server")
            self._wait_mlflow(timeout)
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
        stopped = []
        for name in ("worker", "prefect-server", "mlflow"):
            record = self.state.processes.get(name)
            if record and _stop_group(name, record):
                stopped.append(name)
        record = self.state.processes.get("s3")
        if record and _alive(record):
            try:
                self._snapshot_s3()
            except Exception as err:
                self.echo(f"object store snapshot failed: {type(err).__name__}: {err}")
            if _stop_group("s3", record):
                stopped.append("s3")
        if self._postgres_alive():
            pg_ctl = (postgres_bin() or Path("/usr/bin")) / "pg_ctl"
            subprocess.run(
                _as_db_user(
                    [str(pg_ctl), "-D", str(self.paths.pg_data), "-m", "fast", "-w", "stop"]
                ),
                check=False,
                capture_output=True,
            )
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
            code, _ = _get(url, auth)
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
            f"work pool       {POOL} (process)  deployments: {', '.join(DEPLOYMENTS)}",
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

    def _launch(self, name: str, cmd: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        log = self.paths.logs / f"{name}.log"
        with log.open("ab") as handle:
            # the command only: secrets travel in the environment, which is never written
            handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            handle.flush()
            process = subprocess.Popen(
                cmd,
                cwd=self.paths.root,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: `down` reaches its children
            )
        created = _start_time(process.pid) or time.time()
        self.state.processes[name] = {"pid": process.pid, "created": created}
        self.state.save(self.paths.state_file)
        return process

    def _wait(self, what: str, ready: Callable[[], bool], name: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name and not _alive(self.state.processes[name]):
                log = self.paths.logs / f"{name}.log"
                raise SftopsError(f"{name} exited while waiting for {what}; {log}:\n{_tail(log)}")
            try:
                if ready():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise SftopsError(f"timed out after {timeout:.0f}s waiting for {what}")

    # PostgreSQL ------------------------------------------------------------

    def _postgres_alive(self) -> bool:
        pid_file = self.paths.pg_data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        import psutil

        try:
            return "postgres" in psutil.Process(pid).name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def _start_postgres(self, pg_bin: Path) -> None:
        data, sock = self.paths.pg_data, self.paths.pg_socket
        log = self.paths.logs / "postgres.log"
        data.mkdir(parents=True, exist_ok=True)
        sock.mkdir(parents=True, exist_ok=True)
        log.touch()
        if os.geteuid() == 0:
            for path in (data, sock, log):
                shutil.chown(path, "postgres", "postgres")
            reach = subprocess.run(
                _as_db_user(["test", "-w", str(data)]), capture_output=True, check=False
            )
            if reach.returncode != 0:
                raise SftopsError(
                    "the postgres account cannot reach the state folder (a parent folder is "
                    "private); use SFTOPS_STACK_DIR=<folder readable by all>",
                    file=self.paths.state,
                )
        os.chmod(sock, 0o700)
        if not (data / "PG_VERSION").exists():
            self.echo("initdb: new PostgreSQL cluster")
            subprocess.run(
                _as_db_user(
                    [
                        str(pg_bin / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        "postgres",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        port = self.state.ports["postgres"]
        options = (
            f"-c listen_addresses={LOOPBACK} -c port={port} "
            f"-c unix_socket_directories={sock} -c unix_socket_permissions=0700"
        )
        pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log)]
        result = subprocess.run(
            _as_db_user([*pg_ctl, "-w", "-t", "60", "start"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SftopsError(f"PostgreSQL did not start:\n{_tail(log)}")

    def _psql(self, pg_bin: Path, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(pg_bin / "psql"),
                "-h",
                str(self.paths.pg_socket),
                "-p",
                str(self.state.ports["postgres"]),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SftopsError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def _create_databases(self, pg_bin: Path) -> None:
        for db, owner in DATABASES.items():
            if not self._psql(pg_bin, f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'"):
                self._psql(pg_bin, f"CREATE ROLE {owner} LOGIN")
            if not self._psql(pg_bin, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
                self._psql(pg_bin, f"CREATE DATABASE {db} OWNER {owner}")

    # object store ----------------------------------------------------------

    def _s3_client(self) -> Any:
        import boto3

        creds = self._s3_credentials()
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            region_name=creds["AWS_DEFAULT_REGION"],
        )

    def _start_s3(self, timeout: float) -> None:
        port = self.state.ports["s3"]
        # moto keeps objects in memory: `down` snapshots them to s3/, `up` loads them back
        self._launch("s3", [_tool("moto_server"), "-H", LOOPBACK, "-p", str(port)], self.base_env())
        self._wait(
            "the object store",
            lambda: _get(f"http://{LOOPBACK}:{port}/")[0] == 200,
            "s3",
            timeout,
        )
        self._restore_s3()

    def _ensure_buckets(self) -> None:
        client = self._s3_client()
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            if bucket not in have:
                client.create_bucket(Bucket=bucket)

    def _snapshot_s3(self) -> None:
        client = self._s3_client()
        target = self.paths.s3_snapshot
        staging = target.with_name("s3.new")
        shutil.rmtree(staging, ignore_errors=True)
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            (staging / name).mkdir(parents=True, exist_ok=True)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                for obj in page.get("Contents", []):
                    dest = staging / name / obj["Key"]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(name, obj["Key"], str(dest))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target) if staging.exists() else target.mkdir(parents=True)

    def _restore_s3(self) -> None:
        snapshot = self.paths.s3_snapshot
        if not snapshot.is_dir():
            return
        client = self._s3_client()
        for bucket_dir in sorted(p for p in snapshot.iterdir() if p.is_dir()):
            client.create_bucket(Bucket=bucket_dir.name)
            for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
                client.upload_file(
                    str(path), bucket_dir.name, path.relative_to(bucket_dir).as_posix()
                )

    # Prefect -----------------------------------------------------------------

    def _start_prefect(self) -> None:
        env = self.base_env()
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = pg_url(
            self.paths, self.state.ports["postgres"], "prefect", "prefect", "asyncpg"
        )
        if self.auth.prefect:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth.prefect
        port = self.state.ports["prefect"]
        cmd = [_tool("prefect"), "server", "start", "--host", self.state.host, "--port", str(port)]
        self._launch("prefect-server", cmd, env)

    def _wait_prefect(self, timeout: float) -> None:
        api = self.urls.prefect_api
        self._wait(
            f"the Prefect server on {api}",
            lambda: _get(f"{api}/health", self.prefect_client_auth)[0] == 200,
            "prefect-server",
            timeout,
        )

    def _start_mlflow(self) -> None:
        env = self.base_env()
        port = self.state.ports["postgres"]
        env["MLFLOW_BACKEND_STORE_URI"] = pg_url(self.paths, port, "mlflow", "mlflow")
        env["MLFLOW_S3_ENDPOINT_URL"] = self.s3_endpoint
        # the job runner (GenAI scorers) starts seven consumer processes the pipeline never uses
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        cmd = [
            _tool("mlflow"),
            "server",
            "--host",
            self.state.host,
            "--port",
            str(self.state.ports["mlflow"]),
            "--artifacts-destination",
            f"s3://{MLFLOW_BUCKET}/artifacts",
            "--workers",
            "1",
        ]
        if not is_loopback(self.state.host):
            cmd += ["--allowed-hosts", "*"]
        if self.auth.mlflow_password:
            ini = self.paths.state / "mlflow-auth.ini"
            auth_db = pg_url(self.paths, port, "mlflow_auth", "mlflow")
            ini.write_text(
                "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                f"database_uri = {auth_db}\nadmin_username = {self.auth.mlflow_user}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                # a PBKDF2 check per request costs ~1 s on a busy 2-core machine
                "auth_cache_ttl_seconds = 60\n",
                encoding="utf-8",
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
            env["MLFLOW_AUTH_ADMIN_USERNAME"] = self.auth.mlflow_user
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.auth.mlflow_password
            # CSRF key of the auth app's forms: one server process, so a key per start will do
            env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
            cmd += ["--app-name", "basic-auth"]
        self._launch("mlflow", cmd, env)

    def _wait_mlflow(self, timeout: float) -> None:
        url = self.urls.mlflow
        self._wait(
            f"the MLflow server on {url}",
            lambda: _get(f"{url}/health", self.mlflow_client_auth)[0] == 200,
            "mlflow",
            timeout,
        )

    def _commit(self) -> str:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=self.paths.root,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SftopsError(
                "the project is not a git checkout with a commit", file=self.paths.root
            )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=self.paths.root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if dirty:
            self.echo("note: uncommitted changes are not in the worker's clone (commit first)")
        return out.stdout.strip()

    def _run_cli(self, name: str, cmd: list[str], env: Mapping[str, str], timeout: float) -> None:
        log = self.paths.logs / f"{name}.log"
        with log.open("ab") as handle:
            handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            handle.flush()
            result = subprocess.run(
                cmd,
                cwd=self.paths.root,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise SftopsError(f"`{' '.join(cmd[1:4])}` failed; {log}:\n{_tail(log)}")

    def _deploy(self, timeout: float) -> None:
        """The work pool and the deployments of infra/prefect.yaml, pinned to HEAD."""
        env = self.client_env()
        env["SFTOPS_REPO"] = self.env.get("SFTOPS_REPO") or self.paths.root.as_uri()
        env["SFTOPS_COMMIT"] = self._commit()
        project = self.paths.root / "infra" / "prefect.yaml"
        wanted = {
            "repo": env["SFTOPS_REPO"],
            "commit": env["SFTOPS_COMMIT"],
            "project_file": hashlib.sha256(project.read_bytes()).hexdigest(),
        }
        if self.state.deployed == wanted and self._deployments_present():
            self.echo(f"deployments already at {wanted['commit'][:12]}: not redeployed")
            return
        prefect = _tool("prefect")
        self._run_cli(
            "deploy",
            [prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
            env,
            timeout,
        )
        names = [arg for name in DEPLOYMENTS for arg in ("--name", name)]
        self._run_cli(
            "deploy",
            [prefect, "--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml", *names],
            env,
            timeout,
        )
        self.state.deployed = wanted

    def _deployments_present(self) -> bool:
        api, auth = self.urls.prefect_api, self.prefect_client_auth
        flows = {f["id"]: f["name"] for f in _api(f"{api}/flows/filter", {"limit": 200}, auth)}
        found = _api(f"{api}/deployments/filter", {"limit": 200}, auth)
        names = {f"{flows.get(d['flow_id'], '?')}/{d['name']}" for d in found}
        return set(DEPLOYMENTS) <= names

    def _start_worker(self, timeout: float, workers: int) -> None:
        env = self.client_env()
        env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")  # pick up a triggered run sooner
        cmd = [_tool("prefect"), "worker", "start", "--pool", POOL, "--type", "process"]
        cmd += ["--limit", str(workers), "--name", f"sftops-{socket.gethostname()}"]
        launched = datetime.now(UTC)
        self._launch("worker", cmd, env)
        api, auth = self.urls.prefect_api, self.prefect_client_auth

        def online() -> bool:
            # a heartbeat of this worker, not the last one recorded before a restart
            found = _api(f"{api}/work_pools/{POOL}/workers/filter", {}, auth)
            return any(
                w.get("status") == "ONLINE"
                and datetime.fromisoformat(w["last_heartbeat_time"]) >= launched
                for w in found
                if w.get("last_heartbeat_time")
            )

        self._wait("the worker to come online", online, "worker", timeout)
