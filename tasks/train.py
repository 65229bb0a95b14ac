"""Thin Prefect task around the train stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.config import Params, load_params
from sftops.mlops.pipeline import execute_stage
from sftops.reporting import summary_markdown


@task(name="train", retries=0, cache_policy=NONE, timeout_seconds=6 * 3600)
def train(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("train", params, root)
    create_markdown_artifact(summary_markdown("Train report", summary), key="train-report")
    return summary


@task(name="gpu-request", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def gpu_request(params_file: str, overrides: dict[str, Any]) -> str | None:
    """On a pool that requests GPUs per run (Kubernetes): None when this run's pod has the GPUs
    its ``train.num_processes`` needs, else the name of the run scheduled in its place with
    them (a custom run from the UI cannot set job variables from its parameters)."""
    from prefect import get_client
    from prefect.runtime import flow_run

    from sftops.stack.gpus import admit

    run_id = flow_run.get_id()
    if not run_id:
        return None
    with get_client(sync_client=True) as client:
        moved = admit(
            run_id,
            lambda: load_params(Path(params_file), overrides).train.num_processes,
            client,
        )
    if moved is None:
        return None
    print(f"this pod has fewer GPUs than train.num_processes: rescheduled as {moved.name}")
    return moved.name
