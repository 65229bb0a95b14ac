"""The stages in order, and how one stage is executed: through DVC when the working directory
is a DVC project (DVC's cache skips unchanged stages and dvc.lock records the hashes), else by
calling its `run_<stage>` edge directly (tests, scratch folders)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

from sftops.config import Params

log = logging.getLogger("sftops.pipeline")

STAGE_MODULES = {
    "ingest": "sftops.data.ingest",
    "clean": "sftops.data.clean",
    "validate": "sftops.data.validate",
    "split": "sftops.data.split",
    "augment": "sftops.augment.augment",
    "train": "sftops.modeling.train",
    "evaluate": "sftops.evaluation.report",
}
STAGES = tuple(STAGE_MODULES)
DATA_STAGES = STAGES[: STAGES.index("train")]


def stage_function(name: str) -> Callable[[Params], dict[str, Any]]:
    """The `run_<stage>` edge of a stage, imported on demand (keeps `sftops --help` fast)."""
    stage: Callable[[Params], dict[str, Any]] = getattr(
        import_module(STAGE_MODULES[name]), f"run_{name}"
    )
    return stage


def execute_stage(name: str, params: Params, use_dvc: bool | None = None) -> dict[str, Any]:
    """Run one stage and return its summary (with ``skipped`` when DVC found it unchanged)."""
    from sftops.versioning import is_dvc_project, reproduce, stage_summary

    if use_dvc is None:
        use_dvc = is_dvc_project()
    if not use_dvc:
        return stage_function(name)(params)
    ran = reproduce(name)
    log.info("%s: %s", name, "ran" if ran else "unchanged, skipped by DVC")
    return {**stage_summary(name, params), "skipped": not ran}


def prepare_run(params_file: str, overrides: dict[str, Any] | None) -> Params:
    """Params for an orchestrated run. In a DVC project the overrides are first written to
    params.yaml (as `dvc exp run -S` does), so DVC sees them and the run is reproducible from
    the file; elsewhere they are applied in memory only."""
    from sftops.config import load_params
    from sftops.versioning import is_dvc_project, write_overrides

    if overrides and is_dvc_project():
        load_params(params_file, overrides)  # validate before touching the file
        write_overrides(params_file, overrides)
        log.info("overrides written to %s: %s", params_file, overrides)
        return load_params(params_file)
    return load_params(params_file, overrides)


@contextmanager
def workspace_lock(root: str | Path = ".", poll_seconds: float = 5.0) -> Iterator[None]:
    """One orchestrated run at a time per workspace: a second trigger waits here (queued) until
    the first finishes, instead of both writing the same files. The lock is an flock on
    `.sftops.lock`, so a crashed run releases it and can simply be re-run (DVC then skips the
    stages that completed)."""
    import fcntl
    import time

    path = Path(root) / ".sftops.lock"
    with path.open("a+") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("another run holds %s; waiting for it to finish", path)
                    waited = True
                time.sleep(poll_seconds)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
