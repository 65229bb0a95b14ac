"""Thin Prefect tasks around the data stages (each runs through DVC in the run's workspace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.augment.augment import report_markdown as augment_markdown
from sftops.config import Params
from sftops.data.clean import report_markdown as clean_markdown
from sftops.data.ingest import report_markdown as ingest_markdown
from sftops.mlops.pipeline import execute_stage
from sftops.reporting import summary_markdown


@task(name="ingest", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def ingest(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("ingest", params, root)
    create_markdown_artifact(ingest_markdown(summary), key="ingest-report")
    return summary


@task(name="clean", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def clean(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("clean", params, root)
    create_markdown_artifact(clean_markdown(summary), key="clean-report")
    return summary


@task(name="validate", cache_policy=NONE)
def validate(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("validate", params, root)
    create_markdown_artifact(summary_markdown("Validate report", summary), key="validate-report")
    return summary


@task(name="split", cache_policy=NONE)
def split(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("split", params, root)
    create_markdown_artifact(summary_markdown("Split report", summary), key="split-report")
    return summary


@task(name="augment", retries=1, retry_delay_seconds=5, cache_policy=NONE)
def augment(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("augment", params, root)
    create_markdown_artifact(augment_markdown(summary), key="augment-report")
    return summary
