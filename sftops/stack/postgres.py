"""The team stack's own PostgreSQL cluster: ``initdb`` in the state folder, ``pg_ctl`` start and
stop, the databases and roles of the servers. It listens on 127.0.0.1 and on a unix socket in a
folder only the stack's user can enter (mode 0700), which the servers use without a password.
As root, PostgreSQL's tools run as the ``postgres`` account (PostgreSQL refuses root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from sftops.errors import SftopsError
from sftops.stack.install import postgres_bin
from sftops.stack.services import tail
from sftops.stack.settings import DATABASES, LOOPBACK, StackPaths


def as_db_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` account then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    """The cluster in ``paths.pg_data``, reached on ``port``."""

    def __init__(self, paths: StackPaths, port: int, echo: Callable[[str], None] = print) -> None:
        self.paths, self.port, self.echo = paths, port, echo

    @property
    def log(self) -> Path:
        return self.paths.logs / "postgres.log"

    def alive(self) -> bool:
        """Whether the postmaster of this data folder runs (its pid file names it)."""
        import psutil

        pid_file = self.paths.pg_data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        try:
            return "postgres" in psutil.Process(pid).name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def _prepare_folders(self) -> None:
        data, sock = self.paths.pg_data, self.paths.pg_socket
        data.mkdir(parents=True, exist_ok=True)
        sock.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if os.geteuid() == 0:
            for path in (data, sock, self.log):
                shutil.chown(path, "postgres", "postgres")
            reach = subprocess.run(
                as_db_user(["test", "-w", str(data)]), capture_output=True, check=False
            )
            if reach.returncode != 0:
                raise SftopsError(
                    "the postgres account cannot reach the state folder (a parent folder is "
                    "private); use SFTOPS_STACK_DIR=<folder readable by all>",
                    file=self.paths.state,
                )
        os.chmod(sock, 0o700)

    def start(self, pg_bin: Path) -> None:
        """initdb when the data folder is new, then ``pg_ctl start`` (waits until it accepts)."""
        self._prepare_folders()
        data, sock = self.paths.pg_data, self.paths.pg_socket
        if not (data / "PG_VERSION").exists():
            self.echo("initdb: new PostgreSQL cluster")
            initdb = [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres"]
            initdb += ["--auth-local=trust", "--auth-host=scram-sha-256"]
            initdb += ["-E", "UTF8", "--locale=C.UTF-8"]
            subprocess.run(as_db_user(initdb), check=True, capture_output=True)
        options = (
            f"-c listen_addresses={LOOPBACK} -c port={self.port} "
            f"-c unix_socket_directories={sock} -c unix_socket_permissions=0700"
        )
        pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.log)]
        result = subprocess.run(
            as_db_user([*pg_ctl, "-w", "-t", "60", "start"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SftopsError(f"PostgreSQL did not start:\n{tail(self.log)}")

    def stop(self) -> bool:
        """``pg_ctl stop -m fast`` when it runs; True if it did."""
        if not self.alive():
            return False
        pg_ctl = (postgres_bin() or Path("/usr/bin")) / "pg_ctl"
        subprocess.run(
            as_db_user([str(pg_ctl), "-D", str(self.paths.pg_data), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        return True

    def psql(self, pg_bin: Path, sql: str, db: str = "postgres") -> str:
        cmd = [str(pg_bin / "psql"), "-h", str(self.paths.pg_socket), "-p", str(self.port)]
        cmd += ["-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SftopsError(f"psql failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def create_databases(self, pg_bin: Path) -> None:
        """The servers' databases and their owner roles, where missing."""
        for db, owner in DATABASES.items():
            if not self.psql(pg_bin, f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'"):
                self.psql(pg_bin, f"CREATE ROLE {owner} LOGIN")
            if not self.psql(pg_bin, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
                self.psql(pg_bin, f"CREATE DATABASE {db} OWNER {owner}")
