"""Thin Prefect tasks: a run's workspace (sftops.mlops.workspace) and its DVC experiment."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from sftops.mlops.workspace import (
    Workspace,
    create_workspace,
    in_place,
    is_versioned_project,
    remove_workspace,
    save_experiment,
)


@task(name="open-workspace", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def open_workspace(overrides: dict[str, Any] | None) -> Workspace:
    """A worktree for this flow run, named after it (the DVC experiment gets the same name);
    outside a git + DVC project (scratch folders, tests) the current folder itself."""
    from prefect.settings import PREFECT_API_URL

    from sftops.mlops.prefect_api import in_process_run, watch_for_cancel

    run_id = flow_run.get_id()
    if run_id and PREFECT_API_URL.value() and in_process_run():
        watch_for_cancel(run_id)  # `sftops run` against a server: no runner watches
    if not is_versioned_project():
        return in_place()
    name = f"{flow_run.get_name() or 'run'}-{(flow_run.get_id() or '')[:8]}"
    return create_workspace(name, overrides)


@task(name="save-experiment", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def record_experiment(ws: Workspace) -> dict[str, str]:
    """`dvc exp save`: the run becomes an experiment `dvc exp show` lists; its lineage tags."""
    rev = save_experiment(ws)
    print(f"DVC experiment {ws.name} ({rev[:12]}): `dvc exp apply {ws.name}` restores it")
    return {"dvc.experiment": ws.name, "dvc.experiment_rev": rev}


@task(name="close-workspace", cache_policy=NONE)
def close_workspace(ws: Workspace) -> None:
    remove_workspace(ws)
