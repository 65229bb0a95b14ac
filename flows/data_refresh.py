"""The data half of the pipeline: ingest -> clean -> validate -> split."""

from __future__ import annotations

from typing import Any

from prefect import flow

from sftops.config import load_params
from tasks.data import clean, ingest, split, validate


@flow(name="data_refresh", log_prints=True)
def data_refresh(
    params_file: str = "params.yaml", overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Refresh the train / validation / test splits from the sources in params."""
    params = load_params(params_file, overrides)
    return {
        "ingest": ingest(params),
        "clean": clean(params),
        "validate": validate(params),
        "split": split(params),
    }


if __name__ == "__main__":
    data_refresh()
