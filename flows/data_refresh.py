"""The data half of the pipeline: ingest -> clean -> validate -> split -> augment."""

from __future__ import annotations

from typing import Any

from prefect import flow

from sftops.pipeline import prepare_run
from tasks.data import augment, clean, ingest, split, validate


@flow(name="data_refresh", log_prints=True)
def data_refresh(
    params_file: str = "params.yaml", overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Refresh the train / validation / test splits (and the augmented train split)."""
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
