"""Which MLflow store, and a client bound to it.

``MLFLOW_TRACKING_URI`` when set (a server, or any store MLflow accepts), else a local SQLite
database ``<root>/mlflow.db`` with artifacts in ``<root>/mlruns`` (MLflow 3.17 would put
SQLite-store artifacts under the *current directory's* ``./mlruns``; the experiment's artifact
location is set explicitly so that the store and its artifacts stay together). For an http(s)
server, :func:`check_reachable` probes ``/health`` with a short timeout first, so an unreachable
server is one clear line instead of minutes of MLflow's own retries.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow

from sftops.errors import SftopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlruns"
DEFAULT_EXPERIMENT = "sftops"
HEALTH_TIMEOUT_S = 3.0

_reachable: set[str] = set()
_prepared: set[str] = set()


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(store_root(root) / LOCAL_DB).as_posix()}"


def store_root(root: Path | None = None) -> Path:
    """Where the local store lives: the main checkout, also for a run's workspace (a worktree
    of it), so that every run of a project shares one registry."""
    from sftops.mlops.workspace import project_root

    return project_root(root or Path.cwd())


def artifact_location(uri: str) -> str | None:
    """Artifact root for new experiments: ``mlruns`` beside a SQLite database; ``None`` (the
    server's default) for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return (_sqlite_path(uri).resolve().parent / LOCAL_ARTIFACTS).as_uri()


def _display(uri: str) -> str:
    """The URI without credentials (``user:password@``), for messages.

    >>> _display("http://user:secret@mlflow.internal:5000/")
    'http://mlflow.internal:5000/'
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


def one_line(exc: BaseException) -> str:
    """An exception (or its ``reason``) as one line of at most 300 characters."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """For http(s) tracking URIs, GET ``<uri>/health`` within ``timeout`` seconds.

    Raises :class:`SftopsError` (one line) when the server does not answer or answers 5xx.
    Local stores (SQLite, files) are not checked. A successful check is remembered per process.
    """
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in ("http", "https") or uri in _reachable:
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # something answers: let MLflow report what it is
            _reachable.add(uri)
            return
        problem = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
        problem = one_line(exc)
    else:
        _reachable.add(uri)
        return
    raise SftopsError(
        f"MLflow tracking server {_display(uri)} unreachable: {problem}; the local run folder is "
        "kept"
    )


def _sqlite_path(uri: str) -> Path:
    return Path(urllib.parse.unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0])


def prepare_local_store(uri: str) -> None:
    """Create and migrate a SQLite store under an flock beside it, once per process.

    Two runs that start together against a fresh ``mlflow.db`` would otherwise both run
    MLflow's alembic migrations, and the loser fails with "table _alembic_tmp_params already
    exists". Servers (http) migrate their own store; nothing to do for them.
    """
    import fcntl

    if not uri.startswith("sqlite:///") or uri in _prepared:
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db = _sqlite_path(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with db.with_name(db.name + ".lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            SqlAlchemyStore(uri, artifact_location(uri) or "")
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    _prepared.add(uri)


def mlflow_client(root: Path | None = None) -> MlflowClient:
    """A client bound to the configured store (MLflow's global URIs are left alone)."""
    from mlflow import MlflowClient

    uri = tracking_uri(root)
    check_reachable(uri)
    prepare_local_store(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def fluent(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``start_run``, ``log_model``, ``register_model``) at ``uri``
    for the block, then restore it.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (and the registry one) into
    ``os.environ``; left there, the first store used would silently become the store of every
    later call in the process, whatever its ``root``. So both the module globals and the
    environment variables are restored.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    prepare_local_store(uri)
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {name: os.environ.get(name) for name in names}
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        if saved_tracking is None:
            tracking_utils._tracking_uri = None
        else:
            mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ensure_experiment(name: str = DEFAULT_EXPERIMENT, root: Path | None = None) -> str:
    """The id of experiment ``name``, created (with an explicit artifact location for a local
    SQLite store) or restored from the trash when needed."""
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = artifact_location(tracking_uri(root))
        return str(client.create_experiment(name, artifact_location=location))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """``name`` version ``version``; a version that does not exist is one line."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise SftopsError(f"model {name} has no version {version}") from None
