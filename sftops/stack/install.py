"""What the team stack needs beyond the base install, installed when missing: the Debian
``postgresql`` package (apt-get, as root or with sudo) and the Python packages of the ``stack``
extra (pip, pinned by the project's constraints.txt)."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sftops.errors import SftopsError

# Python modules the stack needs beyond the base install, and the pip requirement of each.
PY_REQUIREMENTS = {
    "asyncpg": "asyncpg",
    "psycopg2": "psycopg2-binary",
    "moto": "moto[server]",
    "boto3": "boto3",
    "dvc_s3": "dvc-s3",
    "flask_wtf": "Flask-WTF",  # MLflow's basic-auth app
}


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
