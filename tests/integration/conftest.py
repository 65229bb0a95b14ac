from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers import commit_all, copy_repo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repo's tracked and untracked (not ignored) files, committed in a fresh git repo."""
    repo = copy_repo(tmp_path / "repo")
    commit_all(repo, "copy")
    return repo


@pytest.fixture
def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH (for `sftops`, `dvc`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env
