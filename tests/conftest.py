from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The folder decides the marker, so `-m unit` / `-m integration` select by folder and no test
# can sit in tests/unit without being part of the fast set (or marked slow).
# tests/infra: schema checks of the deployment files, as fast as unit tests.
FOLDER_MARKERS = {
    "unit": "unit",
    "infra": "unit",
    "integration": "integration",
    "e2e": "e2e",
    "stack": "stack",
}
# Deselected by default (pyproject addopts): a test carrying one of these is not "unit".
NOT_UNIT = ("slow", "gpu", "e2e", "stack")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if ROOT / "sftops" in path.parents:  # doctests of the pure utilities
            item.add_marker(pytest.mark.unit)
            continue
        try:
            folder = path.relative_to(ROOT / "tests").parts[0]
        except ValueError:
            continue
        marker = FOLDER_MARKERS.get(folder)
        if marker == "unit" and any(item.get_closest_marker(m) for m in NOT_UNIT):
            continue  # a slow test kept beside the unit tests it shares helpers with
        if marker and item.get_closest_marker(marker) is None:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def data_stages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, dict]]:
    """ingest -> clean -> validate -> split of the bundled sample, run once per test session
    (in process, outputs under a temporary folder): the tests that need the data stages'
    outputs read them here instead of running the stages again. Returns ``(params, summaries)``;
    ``params.paths`` points at the outputs. Treat the files as read-only (copy them to change)."""
    from sftops.config import IngestParams, Params, PathsParams
    from sftops.data.clean import run_clean
    from sftops.data.ingest import run_ingest
    from sftops.data.split import run_split
    from sftops.data.validate import run_validate

    out = tmp_path_factory.mktemp("data-stages")
    default = Params()
    sources = [s.model_copy(update={"path": str(ROOT / s.path)}) for s in default.ingest.sources]
    params = Params(
        paths=PathsParams(
            ingested=str(out / "data/interim/ingested.parquet"),
            cleaned=str(out / "data/interim/cleaned.parquet"),
            validated=str(out / "data/interim/validated.parquet"),
            splits_dir=str(out / "data/splits"),
            quarantine_dir=str(out / "data/quarantine"),
            reports_dir=str(out / "reports"),
        ),
        ingest=IngestParams(sources=sources),
    )
    summaries = {
        "ingest": run_ingest(params),
        "clean": run_clean(params),
        "validate": run_validate(params),
        "split": run_split(params),
    }
    return params, summaries
