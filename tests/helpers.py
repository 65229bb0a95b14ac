"""Builders shared by tests: canonical tables from a few literal rows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.data.ingest import CANONICAL_COLUMNS, to_canonical


def canonical_table(records: list[dict[str, Any]], source: str = "test") -> pd.DataFrame:
    rows = [to_canonical(r, source, {}, 1_000_000) for r in records]
    return pd.DataFrame(rows, columns=CANONICAL_COLUMNS).astype(
        {c: "string" for c in CANONICAL_COLUMNS}
    )


ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def copy_repo(dest: Path) -> Path:
    """The repo's tracked and untracked (not ignored) files in a fresh git repo at ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def commit_all(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=repo, check=True)
