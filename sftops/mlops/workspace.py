"""One run, one workspace: every orchestrated run executes in its own git worktree of the project.

Why a worktree (and not `dvc exp run --temp`): each stage stays its own Prefect task (progress,
retries, artifacts per stage in the UI), runs stay independent processes that can overlap, and
worktrees share the repository's refs, so `dvc exp save` in the workspace makes an experiment
that `dvc exp show` / `dvc exp apply` in the checkout see at once. In a production worker (a
deployment with a `git_clone` pull step) the same code runs in the clone it was given.

A workspace is
- the checkout's HEAD (detached), plus the checkout's uncommitted changes to tracked files
  (what `dvc exp run` would include), plus the run's overrides written into its params.yaml;
- linked to the checkout's DVC cache and remotes, so outputs of unchanged stages are checked
  out from the cache in seconds and new outputs land where `dvc exp apply` finds them;
- linked to the checkout's `.cache/` (base model, WordNet, embeddings): computed once per checkout,
  or once per machine with `$SFTOPS_CACHE_DIR` (sftops.config.cache_location).

The checkout itself is never written to by a run (only refs/exps, through git).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftops.errors import SftopsError
from sftops.io import file_lock
from sftops.mlops.versioning import dvc_command, git, git_commit, is_dvc_project

log = logging.getLogger("sftops.mlops.workspace")

RUNS_DIR = Path(".sftops") / "runs"
SHARED_LINKS = (".cache",)


@dataclass(frozen=True)
class Workspace:
    """Where a run executes (``root``) and the checkout it came from (``project``)."""

    root: Path
    project: Path
    name: str
    commit: str
    dirty: bool

    @property
    def isolated(self) -> bool:
        return self.root != self.project


def project_root(path: str | Path = ".") -> Path:
    """The main checkout of the repository ``path`` belongs to (a worktree's main checkout);
    ``path`` itself outside git."""
    path = Path(path).resolve()
    try:
        common = git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=path)
    except (SftopsError, OSError):
        return path
    return Path(common.decode().strip()).parent


def run_name(text: str) -> str:
    """A name usable as a folder, a git ref and a DVC experiment name.

    >>> run_name("Custom run: lr=3e-4 / nightly")
    'custom-run-lr-3e-4-nightly'
    """
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return re.sub(r"\.{2,}|-{2,}", "-", cleaned)[:60] or "run"


def _dvc(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        dvc_command(*args), cwd=cwd, capture_output=True, text=True, timeout=600, env=_dvc_env()
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise SftopsError(f"dvc {args[0]} failed in {cwd}: {lines[-1] if lines else '?'}")


def _dvc_env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1"}


def _link_dvc(root: Path, project: Path) -> None:
    """The workspace uses the checkout's cache, remotes and default remote, including what the
    checkout set locally (`.dvc/config.local`, e.g. an S3 endpoint or a default remote of a
    worker's clone); DVC hands local remote URLs back absolute."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        cache_dir = Path(repo.cache.local_cache_dir).resolve()
        remotes = {name: dict(conf) for name, conf in repo.config.get("remote", {}).items()}
        default = repo.config.get("core", {}).get("remote")
    with Repo(str(root)) as repo, repo.config.edit("local") as conf:
        conf["cache"]["dir"] = str(cache_dir)
        for name, settings in remotes.items():
            conf["remote"][name] = settings
        if default:
            conf["core"]["remote"] = default


def create_workspace(
    name: str, overrides: dict[str, Any] | None = None, project: str | Path = "."
) -> Workspace:
    """A fresh worktree for the run ``name`` at the checkout's HEAD (with its uncommitted
    changes), the overrides applied to its params.yaml, outputs of dvc.lock checked out."""
    project = project_root(project)
    name = run_name(name)
    root = project / RUNS_DIR / name
    if root.exists():
        remove_workspace(Workspace(root, project, name, "", False))
    commit = git("rev-parse", "HEAD", cwd=project).decode().strip()
    git("worktree", "prune", cwd=project)  # entries of workspaces a killed run left behind
    git("worktree", "add", "--detach", "--force", str(root), commit, cwd=project)
    try:
        diff = git("diff", "--binary", "HEAD", cwd=project)
        if diff.strip():
            git("apply", "--binary", "--whitespace=nowarn", "-", cwd=root, stdin=diff)
        for link in SHARED_LINKS:
            (project / link).mkdir(exist_ok=True)
            (root / link).symlink_to(project / link, target_is_directory=True)
        if overrides:
            write_overrides(root / "params.yaml", overrides)
        if (root / "dvc.yaml").exists():
            _link_dvc(root, project)
            # Outputs recorded in dvc.lock come from the shared cache; a missing one only means
            # that stage runs.
            try:
                _dvc("checkout", "--quiet", cwd=root)
            except SftopsError as err:
                log.info("workspace %s: not every output is cached (%s)", name, err)
    except BaseException:
        remove_workspace(Workspace(root, project, name, commit, True))
        raise
    ws = Workspace(root, project, name, commit, bool(diff.strip()) or bool(overrides))
    log.info("run %s: workspace %s at %s%s", name, root, commit[:12], " + changes" * ws.dirty)
    return ws


def write_overrides(params_file: Path, overrides: dict[str, Any]) -> None:
    """Set dotted keys in a params.yaml, keeping its comments and order (DVC's own YAML
    round-trip, as `dvc exp run -S` does); validated against the params model first."""
    from dvc.utils.serialize import modify_yaml

    from sftops.config import load_params

    load_params(params_file, overrides)  # a bad override fails before the file changes
    with modify_yaml(params_file) as data:
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value


def save_experiment(ws: Workspace) -> str:
    """Record the workspace as DVC experiment ``ws.name`` (params, dvc.lock, metrics, outputs
    in the shared cache); returns the experiment's commit."""
    reached = _stages_with_outputs(ws.root)
    # `dvc exp save` goes through refs shared by every worktree (refs/exps/exec/EXEC_HEAD ...):
    # two runs saving at once failed or recorded one run's params under the other's name.
    with _experiment_lock(ws.project):
        _dvc("exp", "save", "--force", "--name", ws.name, *reached, cwd=ws.root)
    ref = f"refs/exps/{ws.commit[:2]}/{ws.commit[2:]}/{ws.name}"
    return git("rev-parse", ref, cwd=ws.project).decode().strip()


def _experiment_lock(project: Path) -> contextlib.AbstractContextManager[None]:
    """One `dvc exp save` at a time per project, across processes (released when the process
    dies, so a killed run cannot leave it held)."""
    return file_lock(project / RUNS_DIR.parent / "exp-save.lock")


def _stages_with_outputs(root: Path) -> list[str]:
    """The stages this run reached (all outputs present). A stage it did not reach (data-only
    runs: train, evaluate) records no result: its dvc.lock entry, inherited from the checkout,
    goes, and it is not among the targets of `dvc exp save` (which refuses missing outputs)."""
    import yaml

    lock_file = root / "dvc.lock"
    if not lock_file.exists():
        return []
    lock = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    stages = lock.get("stages", {})
    reached = [
        name
        for name, entry in stages.items()
        if all((root / out["path"]).exists() for out in entry.get("outs", []))
    ]
    if len(reached) < len(stages):
        log.info("stages not run in this workspace: %s", sorted(set(stages) - set(reached)))
        lock["stages"] = {k: v for k, v in stages.items() if k in reached}
        lock_file.write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")
    return reached


def remove_workspace(ws: Workspace) -> None:
    """Remove the worktree (its experiment, if saved, stays in the repository's refs)."""
    if not ws.isolated:
        return
    try:
        git("worktree", "remove", "--force", str(ws.root), cwd=ws.project)
    except SftopsError as err:
        log.warning("%s", err)
    shutil.rmtree(ws.root, ignore_errors=True)
    with contextlib.suppress(SftopsError):
        git("worktree", "prune", cwd=ws.project)


def is_versioned_project(path: str | Path = ".") -> bool:
    """A DVC project in a git checkout with a commit: runs get their own workspace."""
    return is_dvc_project(path) and git_commit(path)[0] != "unknown"


def in_place(project: str | Path = ".") -> Workspace:
    """The current folder as the workspace (not a git checkout, or isolation turned off)."""
    root = Path(project).resolve()
    commit, dirty = git_commit(root)
    return Workspace(root, root, run_name(root.name), commit, dirty)
