"""Thin Prefect tasks: the evaluate stage, then the comparison with the registry's champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.evaluation.report import summary_markdown
from sftops.mlops.pipeline import execute_stage
from sftops.mlops.release import compare_champion


@task(name="evaluate", retries=1, retry_delay_seconds=10, cache_policy=NONE)
def evaluate(params: Params, root: Path) -> dict[str, Any]:
    metrics = execute_stage("evaluate", params, root)
    create_markdown_artifact(summary_markdown(metrics), key="evaluation")
    return metrics


@task(name="compare-champion", retries=1, retry_delay_seconds=10, cache_policy=NONE)
def champion_comparison(params: Params, root: Path) -> dict[str, Any] | None:
    evaluation = compare_champion(params, root)
    if evaluation is not None:
        create_markdown_artifact(summary_markdown(evaluation), key="champion-comparison")
    return evaluation
