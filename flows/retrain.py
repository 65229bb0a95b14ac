"""Retrain: refresh the data, fine-tune, evaluate, register, and promote if the gate passes."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Cancelled
from pydantic import Field

from flows.data_refresh import data_stages
from flows.promote import promote
from sftops.config import load_params
from tasks.evaluate import champion_comparison, evaluate
from tasks.release import push_versions, register
from tasks.train import gpu_request, train
from tasks.workspace import close_workspace, open_workspace, record_experiment


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
    num_processes: int | None = Field(
        None,
        ge=1,
        description="train.num_processes (one per GPU; a Kubernetes run requests as many GPUs).",
    ),
    overrides: dict[str, Any] | None = Field(
        None, description='Any other params.yaml value, e.g. {"clean.max_chars": 4000}.'
    ),
) -> dict[str, Any]:
    """Data stages, training, evaluation (base vs candidate), the comparison with the current
    champion, registration in MLflow (alias challenger, with its evaluation) and the gated
    promotion (alias champion). The run executes in its own workspace (a git worktree at the
    checkout's commit): overrides apply there only, and the run is saved as a DVC experiment
    named after this flow run. Empty fields keep params.yaml's values."""
    overrides = {
        **(overrides or {}),
        **ui_overrides(
            **{
                "train.lr": learning_rate,
                "train.max_steps": max_steps,
                "train.base_model": base_model,
                "train.use_augmented": use_augmented,
                "train.num_processes": num_processes,
            }
        ),
    }
    moved = gpu_request(params_file, overrides)
    if moved:  # this pod has too few GPUs: the run goes on as `moved`, with them
        # a returned state is the run's final state (only a deployment's run gets here)
        return Cancelled(message=f"rescheduled as {moved} with the GPUs it needs")  # type: ignore[return-value]
    ws = open_workspace(overrides)
    try:
        params = load_params(ws.root / params_file, None if ws.isolated else overrides)
        summaries: dict[str, Any] = data_stages(params, ws.root)
        summaries["train"] = train(params, ws.root)
        summaries["evaluate"] = evaluate(params, ws.root)
        evaluation = champion_comparison(params, ws.root)
        lineage: dict[str, str] = {}
        if ws.isolated:
            lineage = record_experiment(ws)
            summaries["experiment"] = lineage
            push_versions(ws.root)
        if params.register_.enabled:
            registered = register(params, ws.root, evaluation, lineage)
            summaries["register"] = registered
            if registered["already_registered"]:
                print(f"model unchanged: already version {registered['version']}, not gated again")
            else:
                summaries["promote"] = promote(registered["version"], str(ws.root / params_file))
        return summaries
    finally:
        close_workspace(ws)


if __name__ == "__main__":
    retrain()
