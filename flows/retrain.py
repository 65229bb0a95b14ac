"""Retrain: refresh the data, fine-tune, evaluate, register, and promote if the gate passes."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import Field

from flows.data_refresh import data_refresh
from flows.promote import promote
from sftops.config import load_params
from sftops.pipeline import workspace_lock
from sftops.versioning import is_dvc_project
from tasks.evaluate import evaluate
from tasks.release import push_versions, register
from tasks.train import train


def ui_overrides(**fields: Any) -> dict[str, Any]:
    """The form's named fields as dotted params overrides (None = keep params.yaml's value).

    >>> ui_overrides(**{"train.lr": 1e-4, "train.max_steps": None})
    {'train.lr': 0.0001}
    """
    return {key: value for key, value in fields.items() if value is not None}


@flow(name="retrain", log_prints=True)
def retrain(
    params_file: str = "params.yaml",
    learning_rate: float | None = Field(None, gt=0, description="train.lr (peak learning rate)."),
    max_steps: int | None = Field(None, ge=1, description="train.max_steps."),
    base_model: str | None = Field(None, description="train.base_model (name or folder)."),
    use_augmented: bool | None = Field(None, description="train.use_augmented."),
    overrides: dict[str, Any] | None = Field(
        None, description='Any other params.yaml value, e.g. {"clean.max_chars": 4000}.'
    ),
) -> dict[str, dict[str, Any]]:
    """Data stages, training on the (augmented) train split, evaluation on the test split,
    registration in MLflow (alias challenger) and the metric-gated promotion (alias champion).
    Empty fields keep params.yaml's values; the values used are recorded in params.yaml (DVC)
    and in the MLflow run."""
    overrides = {
        **(overrides or {}),
        **ui_overrides(
            **{
                "train.lr": learning_rate,
                "train.max_steps": max_steps,
                "train.base_model": base_model,
                "train.use_augmented": use_augmented,
            }
        ),
    }
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
            # the promote flow as a subflow: it pauses for a reviewer when
            # promote.require_approval is set and the gate passes
            summaries["promote"] = promote(summaries["register"]["version"], params_file)
    return summaries


if __name__ == "__main__":
    retrain()
