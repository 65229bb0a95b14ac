"""Thin Prefect task around the evaluate stage's `run_evaluate` edge."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.evaluation.report import summary_markdown
from sftops.pipeline import execute_stage


@task(name="evaluate", retries=1, retry_delay_seconds=10, cache_policy=NONE)
def evaluate(params: Params) -> dict[str, Any]:
    metrics = execute_stage("evaluate", params)
    create_markdown_artifact(summary_markdown(metrics), key="evaluation")
    return metrics
