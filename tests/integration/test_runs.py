"""Runs are isolated: each executes in its own workspace, overrides never reach the checkout,
runs overlap, each is a DVC experiment and an MLflow run, and an identical rerun is cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import tiny_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]
LR = 0.0003


def start_run(repo: Path, home: Path, *sets: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_HOME": str(home),  # each CLI run has its own ephemeral Prefect API
        "PYTHONPATH": str(repo),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [a for s in sets for a in ("--set", s)]
    return subprocess.Popen(
        ["sftops", "run", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_overlapping_runs_are_isolated_recorded_and_an_identical_rerun_is_cheap(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    repo = tiny_repo(tmp_path)
    params_before = (repo / "params.yaml").read_bytes()
    lock_before = (repo / "dvc.lock").read_bytes()

    started = time.monotonic()
    custom = start_run(repo, tmp_path / "prefect-a", f"train.lr={LR}")
    default = start_run(repo, tmp_path / "prefect-b")
    out_custom, out_default = finish(custom), finish(default)
    overlapped = time.monotonic() - started

    # The checkout is untouched: params, dvc.lock, no outputs, no leftover worktree.
    assert (repo / "params.yaml").read_bytes() == params_before
    assert (repo / "dvc.lock").read_bytes() == lock_before
    assert not (repo / "models" / "sft").exists()
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(worktrees) == 1, worktrees

    # Each run is a DVC experiment of this commit, with its own params.
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    baseline = json.loads(shown)[1]
    experiments = {
        e["name"]: e["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["lr"]
        for e in baseline["experiments"]
    }
    assert sorted(experiments.values()) == [0.0001, LR], experiments

    # Each run is an MLflow run carrying its experiment name and its learning rate.
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sftops").experiment_id])
    by_experiment = {r.data.tags["dvc.experiment"]: r for r in runs}
    assert set(by_experiment) == set(experiments)
    for name, lr in experiments.items():
        assert float(by_experiment[name].data.params["train.lr"]) == lr
        assert by_experiment[name].data.tags["git.commit"] == baseline["rev"]
    versions = client.search_model_versions("name='sftops-chat'")
    assert len(versions) == 2
    aliases = client.get_registered_model("sftops-chat").aliases
    assert set(aliases) <= {"challenger", "champion"}
    assert all(str(v) in {mv.version for mv in versions} for v in aliases.values())
    assert "already" not in out_custom + out_default

    # A rerun of the default settings: every stage from the cache, nothing registered again.
    started = time.monotonic()
    rerun = finish(start_run(repo, tmp_path / "prefect-b"))
    again = time.monotonic() - started
    assert "unchanged: already sftops-chat" in rerun
    assert len(client.search_model_versions("name='sftops-chat'")) == 2
    print(f"two overlapping runs: {overlapped:.0f}s; identical rerun: {again:.0f}s")
