"""Thin Prefect tasks around the register edge and the DVC/experiment bookkeeping of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.mlops.release import run_register
from sftops.mlops.versioning import push


@task(name="register", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def register(
    params: Params, root: Path, evaluation: dict[str, Any] | None, tags: dict[str, str]
) -> dict[str, Any]:
    out = run_register(params, root, evaluation=evaluation, tags=tags)
    if out["tracking_uri"].startswith("http"):
        create_link_artifact(
            f"{out['tracking_uri']}/#/models/{out['model_name']}",
            link_text=f"{out['model_name']} v{out['version']}",
            key="model",
        )
    return out


@task(name="dvc-push", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def push_versions(root: Path) -> None:
    """Send the data and model versions of the run's dvc.lock to the DVC remote."""
    push(root)
