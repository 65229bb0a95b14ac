"""Retrain: refresh the data, fine-tune, evaluate, register, and promote if the gate passes."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.data_refresh import data_refresh
from sftops.config import load_params
from sftops.pipeline import workspace_lock
from sftops.versioning import is_dvc_project
from tasks.evaluate import evaluate
from tasks.release import promote, push_versions, register
from tasks.train import train


@flow(name="retrain", log_prints=True)
def retrain(
    params_file: str = "params.yaml", overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Data stages, training on the (augmented) train split, evaluation on the test split,
    registration in MLflow (alias challenger) and the metric-gated promotion (alias champion)."""
    with workspace_lock():
        summaries = data_refresh(params_file, overrides, lock=False)
        params = load_params(params_file, None if is_dvc_project() else overrides)
        summaries["train"] = train(params)
        summaries["evaluate"] = evaluate(params)
        if is_dvc_project():
            push_versions()
        unchanged = summaries["train"].get("skipped") and summaries["evaluate"].get("skipped")
        if unchanged:
            print("model and evaluation unchanged since the last run: nothing new to register")
        elif params.register_.enabled:
            summaries["register"] = register(params)
            summaries["promote"] = promote(params, summaries["register"]["version"])
    return summaries


if __name__ == "__main__":
    retrain()
