"""Every DVC and git call of the project lives here.

Orchestrated runs execute each stage through `dvc repro <stage>` when the working directory is
a DVC project, so DVC's cache decides what is unchanged (a second identical run skips every
stage) and `dvc.lock` records the hashes of what was produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from sftops.config import Params, apply_overrides
from sftops.errors import SftopsError

# The JSON file each stage writes whose content is the stage's summary.
STAGE_SUMMARY = {
    "ingest": "ingest_report.json",
    "clean": "clean_report.json",
    "validate": "validate_report.json",
    "split": "split_report.json",
    "augment": "augment_report.json",
    "train": "train_report.json",
    "evaluate": "metrics.json",
}


def is_dvc_project(root: str | Path = ".") -> bool:
    root = Path(root)
    return (root / "dvc.yaml").exists() and (root / ".dvc").is_dir()


@contextmanager
def _tools_on_path() -> Iterator[None]:
    """DVC runs stage commands (`sftops <stage>`) through the shell: make this interpreter's
    scripts folder come first on PATH, whether or not the caller activated the venv."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{before}"
    try:
        yield
    finally:
        os.environ["PATH"] = before


def reproduce(stage: str, root: str | Path = ".") -> bool:
    """`dvc repro --single-item <stage>`: run the stage only if its deps, params or outs changed.
    Returns whether it ran."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with _tools_on_path(), Repo(str(root)) as repo:
        try:
            ran = repo.reproduce(targets=[stage], single_item=True)
        except DvcException as err:
            raise SftopsError(f"dvc repro {stage} failed: {err}") from None
    return bool(ran)


def stage_summary(stage: str, params: Params) -> dict[str, Any]:
    path = Path(params.paths.reports_dir) / STAGE_SUMMARY[stage]
    if not path.exists():
        raise SftopsError("stage summary missing after the stage ran", file=path)
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    summary.pop("history", None)
    return summary


def write_overrides(params_file: str | Path, overrides: dict[str, Any]) -> None:
    """Record overrides in params.yaml itself (what `dvc exp run -S` does), so DVC sees them
    and the run can be reproduced from the committed file."""
    path = Path(params_file)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    updated = apply_overrides(raw or {}, overrides)
    header = (
        "".join(line + "\n" for line in path.read_text().splitlines() if line.startswith("#"))
        if path.exists()
        else ""
    )
    path.write_text(
        header + yaml.safe_dump(updated, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )


def push(root: str | Path = ".") -> None:
    """`dvc push` to the default remote."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        repo.push()


def git_commit(root: str | Path = ".") -> tuple[str, bool]:
    """(HEAD commit, working tree dirty?) or ("unknown", True) outside a git repository."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", True
    if not head:
        return "unknown", True
    return head, bool(status.strip())


def restore_run(commit: str, targets: list[str], root: str | Path = ".") -> list[str]:
    """Put the versions of ``targets`` (DVC outputs: the run's train / test data, its model)
    recorded at ``commit`` into the workspace: that commit's dvc.lock, dvc.yaml and params.yaml
    from git, then `dvc pull` of the targets (from the cache, else the remote). Returns the
    outputs restored."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        subprocess.run(
            ["git", "checkout", commit, "--", "dvc.lock", "dvc.yaml", "params.yaml"],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as err:
        raise SftopsError(
            f"git cannot restore commit {commit[:12]}: {err.stderr.strip()}"
        ) from None
    with Repo(str(root)) as repo:
        try:
            result = repo.pull(targets=targets, force=True)
        except DvcException as err:
            raise SftopsError(
                f"dvc could not restore the outputs of {commit[:12]}: {err}"
            ) from None
    return sorted(result.get("added", []) + result.get("modified", []))
