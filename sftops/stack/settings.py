"""Settings of the team stack (`sftops stack`): where its state lives, its ports and URLs, and
the auth rule for exposing it. Pure data and checks; nothing here starts a process.

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

import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sftops.errors import SftopsError
from sftops.stack.deployments import POOLS

STATE_DIR = ".stack"
POOL = POOLS["process"].name  # the work pool of `stack up`'s worker
MLFLOW_BUCKET = "sftops-mlflow"
DVC_BUCKET = "sftops-dvc"
DVC_REMOTE = "objectstore"
DATABASES = {"prefect": "prefect", "mlflow": "mlflow", "mlflow_auth": "mlflow"}
LOOPBACK = "127.0.0.1"


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

    def validate(self) -> None:
        """Refuse settings the servers would reject only once started."""
        if self.mlflow_password is not None and len(self.mlflow_password) < 12:
            raise SftopsError("MLFLOW_AUTH_ADMIN_PASSWORD: MLflow wants at least 12 characters")
        if self.prefect is not None and ":" not in self.prefect:
            raise SftopsError("PREFECT_SERVER_API_AUTH_STRING must be user:password")


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


def s3_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """The object store's credentials from ``env``; placeholders for the built-in moto store,
    which accepts any key (they are not secrets: that store binds 127.0.0.1)."""
    return {
        "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID") or "sftops-local",
        "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY") or "sftops-local",
        "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
