"""The stages in order, and how one stage is executed: through DVC when the workspace is a DVC
project (DVC's cache skips unchanged stages and dvc.lock records the hashes), else by calling its
`run_<stage>` edge directly (tests, scratch folders). Where a run executes:
sftops.mlops.workspace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from sftops.config import Params

log = logging.getLogger("sftops.mlops.pipeline")

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


def execute_stage(name: str, params: Params, root: str | Path = ".") -> dict[str, Any]:
    """Run one stage in the workspace ``root`` and return its summary (``skipped`` when DVC
    found it unchanged). In a DVC project the stage runs as `dvc repro --single-item` in its
    own process group; elsewhere (tests, scratch folders: ``root`` must be the current
    folder) its edge is called in-process."""
    from sftops.mlops.versioning import is_dvc_project, reproduce, stage_summary

    if not is_dvc_project(root):
        return stage_function(name)(params)
    ran = reproduce(name, root)
    log.info("%s: %s", name, "ran" if ran else "unchanged, skipped by DVC")
    return {**stage_summary(name, params, root), "skipped": not ran}


def run_in_workspace(
    params_file: Path, overrides: dict[str, Any], stages: tuple[str, ...]
) -> dict[str, Any]:
    """All ``stages`` in order without Prefect: in a workspace of their own (and saved as a DVC
    experiment) in a versioned project, else here; returns each stage's summary."""
    import time

    from sftops.config import load_params
    from sftops.mlops.workspace import (
        create_workspace,
        in_place,
        is_versioned_project,
        remove_workspace,
        save_experiment,
    )

    isolated = is_versioned_project()
    ws = (
        create_workspace(f"run-{time.strftime('%Y%m%d-%H%M%S')}", overrides)
        if isolated
        else in_place()
    )
    try:
        params = load_params(ws.root / params_file, None if isolated else overrides)
        summaries: dict[str, Any] = {name: execute_stage(name, params, ws.root) for name in stages}
        if isolated:
            rev = save_experiment(ws)
            summaries["experiment"] = {"dvc.experiment": ws.name, "dvc.experiment_rev": rev}
        return summaries
    finally:
        remove_workspace(ws)
