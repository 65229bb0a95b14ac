"""Thin Prefect tasks around the register and promote edges."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.release import run_promote, run_register
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


@task(name="promote", retries=1, retry_delay_seconds=10, cache_policy=NONE)
def promote(params: Params, version: str, approved_by: str | None = None) -> dict[str, Any]:
    out = run_promote(params, version, approved_by=approved_by)
    verdict = "promoted to champion" if out["promoted"] else "not promoted"
    lines = "\n".join(f"- {r}" for r in out["reasons"])
    create_markdown_artifact(
        f"# {out['model_name']} v{version}: {verdict}\n\n{lines}\n", key="promotion"
    )
    return out


@task(name="dvc-push", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def push_versions() -> None:
    """Send the data and model versions recorded in dvc.lock to the DVC remote."""
    push()
