"""`dvc repro` in a fresh copy of the repo reproduces the outputs; a second run skips all.

The first `dvc repro augment` (every stage, from no outputs) runs once per session in the
``reproduced_repo`` fixture (tests/integration/conftest.py); each test works on a copy of it.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

OUTPUTS = [
    "data/interim/ingested.parquet",
    "data/interim/cleaned.parquet",
    "data/interim/validated.parquet",
    "data/splits/train.parquet",
    "data/splits/validation.parquet",
    "data/splits/test.parquet",
    "reports/clean_report.json",
    "data/splits/train_aug.parquet",
]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dvc_repro_reproduces_then_skips_and_push_pull_restore(
    reproduced_copy: Path, tool_env: dict[str, str], tmp_path: Path
) -> None:
    repo_copy = reproduced_copy  # `dvc repro augment` ran there from no outputs
    hashes = {name: digest(repo_copy / name) for name in OUTPUTS}

    second = run(["dvc", "repro", "augment"], repo_copy, tool_env)
    assert "Data and pipelines are up to date" in second
    assert "Running stage" not in second

    run(
        ["dvc", "remote", "modify", "--local", "localremote", "url", str(tmp_path / "remote")],
        repo_copy,
        tool_env,
    )
    run(["dvc", "push", "--with-deps", "augment"], repo_copy, tool_env)
    for name in OUTPUTS:
        (repo_copy / name).unlink()
    run(["dvc", "pull", "--with-deps", "augment"], repo_copy, tool_env)
    assert {name: digest(repo_copy / name) for name in OUTPUTS} == hashes


def test_changing_split_params_reruns_only_split_and_below(
    reproduced_copy: Path, tool_env: dict[str, str]
) -> None:
    repo_copy = reproduced_copy
    params = repo_copy / "params.yaml"
    params.write_text(params.read_text().replace("salt: sftops", "salt: other"))
    out = run(["dvc", "repro", "augment"], repo_copy, tool_env)
    assert "Running stage 'split'" in out and "Running stage 'augment'" in out
    for stage in ("ingest", "clean", "validate"):
        assert f"Running stage '{stage}'" not in out


def test_editing_a_helper_split_imports_marks_split_changed(
    reproduced_copy: Path, tool_env: dict[str, str]
) -> None:
    import json

    repo_copy = reproduced_copy
    assert json.loads(run(["dvc", "status", "split", "--json"], repo_copy, tool_env)) == {}
    helper = repo_copy / "sftops" / "rowkeys.py"  # imported by split, not by validate
    helper.write_text(helper.read_text() + "\n# an edit\n")
    status = json.loads(run(["dvc", "status", "--json"], repo_copy, tool_env))

    def modified_deps(stage: str) -> list[str]:
        return [
            path
            for entry in status.get(stage, [])
            if isinstance(entry, dict)
            for path, change in entry.get("changed deps", {}).items()
            if change == "modified"
        ]

    assert "sftops/rowkeys.py" in modified_deps("split")
    assert "sftops/rowkeys.py" not in modified_deps("validate")
