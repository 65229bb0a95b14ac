"""The data half of the pipeline: ingest -> clean -> validate -> split -> augment."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from prefect import flow

from sftops.pipeline import prepare_run, workspace_lock
from tasks.data import augment, clean, ingest, split, validate


@flow(name="data_refresh", log_prints=True)
def data_refresh(
    params_file: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
    lock: bool = True,
) -> dict[str, dict[str, Any]]:
    """Refresh the train / validation / test splits (and the augmented train split)."""
    with workspace_lock() if lock else nullcontext():
        params = prepare_run(params_file, overrides)
        return {
            "ingest": ingest(params),
            "clean": clean(params),
            "validate": validate(params),
            "split": split(params),
            "augment": augment(params),
        }


if __name__ == "__main__":
    data_refresh()
