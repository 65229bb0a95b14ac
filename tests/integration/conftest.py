from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TINY_SOURCE_WEIGHT, commit_all, copy_repo

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


# The data stages of the DVC tests: a quarter of each sample source (by row hash) and 20
# augmented rows without the fluency model (the DVC behaviour is under test, not the data).
DVC_TEST_PARAMS: dict[str, Any] = {
    "augment.max_rows": 20,
    "augment.filter.fluency_model": None,
}


def run_ok(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed git + DVC copy of the project (quarter sample, :data:`DVC_TEST_PARAMS`) in
    which `dvc repro augment` ran once, from no outputs, per test session. Read-only: tests
    take a copy (``reproduced_copy``)."""
    import yaml

    from sftops.config import apply_overrides

    repo = copy_repo(tmp_path_factory.mktemp("reproduced") / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params = apply_overrides(params, DVC_TEST_PARAMS)
    for source in params["ingest"]["sources"]:
        source["weight"] = TINY_SOURCE_WEIGHT
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    commit_all(repo, "copy, test settings")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    assert not (repo / "data" / "interim" / "ingested.parquet").exists()  # outputs are not copied
    run_ok(["dvc", "repro", "augment"], repo, env)
    return repo


@pytest.fixture
def reproduced_copy(reproduced_repo: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`reproduced_repo` (git history, DVC cache and outputs)."""
    return Path(shutil.copytree(reproduced_repo, tmp_path / "repo", symlinks=True))
