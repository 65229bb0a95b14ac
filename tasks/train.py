"""Thin Prefect task around the train stage's `run_train` edge."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from sftops.config import Params
from sftops.modeling.train import run_train
from sftops.pipeline import execute_stage
from sftops.reporting import summary_markdown


@task(name="train", retries=0, cache_policy=NONE, timeout_seconds=6 * 3600)
def train(params: Params, resume: bool = False) -> dict[str, Any]:
    summary = run_train(params, resume=True) if resume else execute_stage("train", params)
    create_markdown_artifact(summary_markdown("Train report", summary), key="train-report")
    return summary
