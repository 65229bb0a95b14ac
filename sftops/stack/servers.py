"""The command lines and environments of the team stack's servers: the object store (moto),
the Prefect server on PostgreSQL, the MLflow tracking server on PostgreSQL with artifacts proxied
to the object store (with its ``basic-auth`` app when a password is set), and the worker.

Secrets go into the environment, never onto the command line: the log of each service starts
with its command line.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Mapping

from sftops.stack.services import tool
from sftops.stack.settings import (
    LOOPBACK,
    MLFLOW_BUCKET,
    POOL,
    Auth,
    StackPaths,
    State,
    is_loopback,
    pg_url,
)

Launch = tuple[list[str], dict[str, str]]  # command, environment


def object_store(state: State) -> list[str]:
    """moto's S3 server; always on 127.0.0.1, since it checks no credentials."""
    return [tool("moto_server"), "-H", LOOPBACK, "-p", str(state.ports["s3"])]


def prefect_server(paths: StackPaths, state: State, auth: Auth, base: Mapping[str, str]) -> Launch:
    env = dict(base)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = pg_url(
        paths, state.ports["postgres"], "prefect", "prefect", "asyncpg"
    )
    if auth.prefect:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth.prefect
    port = str(state.ports["prefect"])
    return [tool("prefect"), "server", "start", "--host", state.host, "--port", port], env


def mlflow_server(
    paths: StackPaths, state: State, auth: Auth, s3_endpoint: str, base: Mapping[str, str]
) -> Launch:
    """With a password set, also writes the basic-auth app's ini (it holds no secret: the admin
    password travels in the environment)."""
    pg_port = state.ports["postgres"]
    env = dict(base)
    env["MLFLOW_BACKEND_STORE_URI"] = pg_url(paths, pg_port, "mlflow", "mlflow")
    env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint
    # the job runner (GenAI scorers) starts seven consumer processes the pipeline never uses
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    cmd = [tool("mlflow"), "server", "--host", state.host, "--port", str(state.ports["mlflow"])]
    cmd += ["--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts", "--workers", "1"]
    if not is_loopback(state.host):
        cmd += ["--allowed-hosts", "*"]
    if auth.mlflow_password:
        ini = paths.state / "mlflow-auth.ini"
        auth_db = pg_url(paths, pg_port, "mlflow_auth", "mlflow")
        ini.write_text(
            "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = {auth_db}\nadmin_username = {auth.mlflow_user}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # a PBKDF2 check per request costs ~1 s on a busy 2-core machine
            "auth_cache_ttl_seconds = 60\n",
            encoding="utf-8",
        )
        env.update(
            MLFLOW_AUTH_CONFIG_PATH=str(ini),
            MLFLOW_AUTH_ADMIN_USERNAME=auth.mlflow_user,
            MLFLOW_AUTH_ADMIN_PASSWORD=auth.mlflow_password,
        )
        # CSRF key of the auth app's forms: one server process, so a key per start will do
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        cmd += ["--app-name", "basic-auth"]
    return cmd, env


def worker(workers: int, base: Mapping[str, str]) -> Launch:
    """The worker of the ``process`` pool; ``base``: the stack's client environment."""
    env = dict(base)
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")  # pick up a triggered run sooner
    cmd = [tool("prefect"), "worker", "start", "--pool", POOL, "--type", "process"]
    cmd += ["--limit", str(workers), "--name", f"sftops-{socket.gethostname()}"]
    return cmd, env
