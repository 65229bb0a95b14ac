"""Thin Prefect task around the train stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.mlops.pipeline import execute_stage
from sftops.reporting import summary_markdown


@task(name="train", retries=0, cache_policy=NONE, timeout_seconds=6 * 3600)
def train(params: Params, root: Path) -> dict[str, Any]:
    summary = execute_stage("train", params, root)
    create_markdown_artifact(summary_markdown("Train report", summary), key="train-report")
    return summary
