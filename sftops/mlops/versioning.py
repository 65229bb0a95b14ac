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
from pathlib import Path
from typing import Any

from sftops.config import Params
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


def dvc_command(*args: str) -> list[str]:
    """`dvc <args>` with this interpreter's DVC (no reliance on PATH)."""
    return [sys.executable, "-m", "dvc", *args]


def stage_env(root: str | Path) -> dict[str, str]:
    """Environment of a stage command: the workspace's own code first on the import path (a
    run executes the code of its workspace, not of the checkout the venv was installed from),
    this interpreter's scripts first on PATH (DVC runs `sftops <stage>` through the shell)."""
    root = str(Path(root).resolve())
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": root + (os.pathsep + path if path else ""),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }


def reproduce(stage: str, root: str | Path = ".", timeout: float | None = None) -> bool:
    """`dvc repro --single-item <stage>` in ``root``, as a process group that is stopped with
    the run (cancel, Ctrl-C, timeout). Returns whether the stage ran (False: DVC found it
    unchanged)."""
    from sftops.mlops.processes import run_in_group

    status = run_in_group(
        dvc_command("repro", "--single-item", stage),
        cwd=root,
        env=stage_env(root),
        timeout=timeout,
        what=f"stage {stage} (dvc repro)",
        keep="Stage '",
    )
    return not stage_was_skipped(status)


def stage_was_skipped(status_lines: list[str]) -> bool:
    """From DVC's status lines: the stage did not change, or its outputs came from the run
    cache (the same deps and params ran before), so its command did not run.

    >>> stage_was_skipped(["Stage 'train' is cached - skipping run, checking out outputs"])
    True
    >>> stage_was_skipped(["Stage 'split' didn't change, skipping"])
    True
    >>> stage_was_skipped([])
    False
    """
    return any("skipping" in line for line in status_lines)


def stage_summary(stage: str, params: Params, root: str | Path = ".") -> dict[str, Any]:
    path = Path(root) / params.paths.reports_dir / STAGE_SUMMARY[stage]
    if not path.exists():
        raise SftopsError("stage summary missing after the stage ran", file=path)
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    summary.pop("history", None)
    return summary


def push(root: str | Path = ".") -> None:
    """`dvc push` to the default remote."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        repo.push()


def git(*args: str, cwd: str | Path, stdin: bytes | None = None, timeout: float = 120) -> bytes:
    """``git <args>`` in ``cwd``; its stdout. A non-zero exit is one line: ``SftopsError``
    with git's last line of stderr."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True, timeout=timeout
        )
    except subprocess.CalledProcessError as err:
        detail = err.stderr.decode(errors="replace").strip().splitlines()
        raise SftopsError(
            f"git {args[0]} failed in {cwd}: {detail[-1] if detail else err}"
        ) from None
    return done.stdout


def git_commit(root: str | Path = ".") -> tuple[str, bool]:
    """(HEAD commit, working tree dirty?) or ("unknown", True) outside a git repository."""
    try:
        head = git("rev-parse", "HEAD", cwd=root, timeout=10).decode().strip()
        status = git("status", "--porcelain", cwd=root, timeout=10).decode()
    except (OSError, subprocess.SubprocessError, SftopsError):
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


def experiment_exists(name: str, root: str | Path = ".") -> bool:
    """A DVC experiment called ``name`` (any baseline) is in the repository's refs."""
    try:
        refs = git("for-each-ref", "--format=%(refname)", "refs/exps/", cwd=root, timeout=30)
    except (OSError, subprocess.SubprocessError, SftopsError):
        return False
    names = refs.decode(errors="replace").split()
    return any(ref.rsplit("/", 1)[-1] == name for ref in names if ref.count("/") >= 4)


def apply_experiment(name: str, root: str | Path = ".") -> None:
    """`dvc exp apply <name>`: the experiment's params, dvc.lock and outputs (from the cache)
    into the checkout at ``root``."""
    done = subprocess.run(
        dvc_command("exp", "apply", name),
        cwd=root,
        capture_output=True,
        text=True,
        env=stage_env(root),
        timeout=600,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SftopsError(f"dvc exp apply {name} failed: {lines[-1] if lines else '?'}")
