"""Thin Prefect tasks around the register and promote edges."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.release import run_register
from sftops.versioning import push


@task(name="register", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def register(params: Params) -> dict[str, Any]:
    out = run_register(params)
    if out["tracking_uri"].startswith("http"):
        create_link_artifact(
            f"{out['tracking_uri']}/#/models/{out['model_name']}",
            link_text=f"{out['model_name']} v{out['version']}",
            key="model",
        )
    return out


@task(name="dvc-push", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def push_versions() -> None:
    """Send the data and model versions recorded in dvc.lock to the DVC remote."""
    push()
