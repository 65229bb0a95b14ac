"""The data half of the pipeline: ingest -> clean -> validate -> split -> augment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from sftops.config import Params, load_params
from tasks.data import augment, clean, ingest, split, validate
from tasks.workspace import close_workspace, open_workspace, record_experiment


def data_stages(params: Params, root: Path) -> dict[str, dict[str, Any]]:
    return {
        "ingest": ingest(params, root),
        "clean": clean(params, root),
        "validate": validate(params, root),
        "split": split(params, root),
        "augment": augment(params, root),
    }


@flow(name="data_refresh", log_prints=True)
def data_refresh(
    params_file: str = "params.yaml", overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Refresh the train / validation / test splits (and the augmented train split) in this
    run's own workspace; the result is the DVC experiment named after the run."""
    ws = open_workspace(overrides)
    try:
        params = load_params(ws.root / params_file, None if ws.isolated else overrides)
        summaries = data_stages(params, ws.root)
        if ws.isolated:
            summaries["experiment"] = record_experiment(ws)
        return summaries
    finally:
        close_workspace(ws)


if __name__ == "__main__":
    data_refresh()
