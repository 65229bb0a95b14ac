"""`sftops reproduce <run-id>` restores the data a logged pipeline run was trained on."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reproduce_restores_the_runs_data_version(
    reproduced_copy: Path, tool_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.mlops import registry

    repo_copy = reproduced_copy  # the data stages already ran there (tests/integration/conftest.py)

    env = {**tool_env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    sh(
        ["dvc", "remote", "modify", "--local", "localremote", "url", str(tmp_path / "remote")],
        repo_copy,
        env,
    )
    sh(["dvc", "repro", "split"], repo_copy, env)
    sh(["dvc", "push", "--with-deps", "split"], repo_copy, env)
    sh([*git, "commit", "-q", "--allow-empty", "-am", "data v1"], repo_copy, env)
    test_split = repo_copy / "data/splits/test.parquet"
    first = digest(test_split)
    # only the data stages ran in this copy: the run has no model output to restore
    lineage = registry.lineage_from_repo(
        repo_copy, train_data="data/splits/train.parquet", model_dir="models/not-trained"
    )
    run_id = registry.log_pipeline_run(
        {"split": {"salt": "sftops"}}, {"history": []}, {"models": {}}, [], lineage, root=tmp_path
    )

    params = repo_copy / "params.yaml"
    params.write_text(params.read_text().replace("salt: sftops", "salt: other"))
    sh(["dvc", "repro", "split"], repo_copy, env)
    sh([*git, "commit", "-qam", "data v2"], repo_copy, env)
    assert digest(test_split) != first

    out = sh(["sftops", "reproduce", run_id], repo_copy, env)
    assert digest(test_split) == first
    assert "salt: sftops" in params.read_text()
    assert lineage["git.commit"][:12] in out


def test_reproduce_unknown_run_is_one_line(
    repo_copy: Path, tool_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**tool_env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    done = subprocess.run(
        ["sftops", "reproduce", "0123abcd"], cwd=repo_copy, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    # (MLflow itself logs two INFO lines when it creates a new database)
    assert done.stderr.strip().splitlines()[-1].startswith("error: MLflow has no run '0123abcd'")
