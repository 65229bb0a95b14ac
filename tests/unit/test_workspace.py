"""A run's workspace: a worktree at the checkout's commit with its uncommitted changes and the
run's overrides; the checkout itself is never written to."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sftops.errors import ConfigError
from sftops.mlops.workspace import create_workspace, project_root, remove_workspace, write_overrides

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
PARAMS = """# sftops parameters (a comment that must survive)
train:
  lr: 0.0001  # peak learning rate
  max_steps: 24
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "params.yaml").write_text(PARAMS)
    (repo / "code.py").write_text("VALUE = 1\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def test_overrides_keep_comments_and_order(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    write_overrides(params, {"train.lr": 0.0003})
    text = params.read_text()
    assert "# sftops parameters (a comment that must survive)" in text
    assert "lr: 0.0003  # peak learning rate" in text
    assert text.index("lr:") < text.index("max_steps:")


def test_a_bad_override_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    with pytest.raises(ConfigError, match="train"):
        write_overrides(params, {"train.max_steps": -1})
    assert params.read_text() == PARAMS


def test_workspace_has_the_changes_and_overrides_the_checkout_keeps_its_files(
    checkout: Path,
) -> None:
    (checkout / "code.py").write_text("VALUE = 2\n")  # uncommitted: the run includes it
    before = {p.name: p.read_bytes() for p in checkout.iterdir() if p.is_file()}
    ws = create_workspace("Nightly run #1", {"train.lr": 0.0003}, project=checkout)
    try:
        assert ws.isolated and ws.name == "nightly-run-1"
        assert ws.root == checkout / ".sftops" / "runs" / "nightly-run-1"
        assert project_root(ws.root) == checkout.resolve()
        assert (ws.root / "code.py").read_text() == "VALUE = 2\n"
        assert "lr: 0.0003" in (ws.root / "params.yaml").read_text()
        assert (ws.root / ".cache").resolve() == (checkout / ".cache").resolve()
        assert ws.dirty
    finally:
        remove_workspace(ws)
    assert not ws.root.exists()
    assert {p.name: p.read_bytes() for p in checkout.iterdir() if p.is_file()} == before
    listed = subprocess.run(
        ["git", "worktree", "list"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(listed) == 1


def test_experiment_saves_of_overlapping_runs_take_turns(tmp_path: Path) -> None:
    """While one run saves its DVC experiment, another process cannot take the lock."""
    import sys

    from sftops.mlops.workspace import _experiment_lock

    try_lock = (
        "import fcntl, sys; handle = open(sys.argv[1], 'a')\n"
        "try:\n    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    lock = tmp_path / ".sftops" / "exp-save.lock"
    with _experiment_lock(tmp_path):
        held = subprocess.run([sys.executable, "-c", try_lock, str(lock)], check=False)
    free = subprocess.run([sys.executable, "-c", try_lock, str(lock)], check=False)
    assert (held.returncode, free.returncode) == (3, 0)
