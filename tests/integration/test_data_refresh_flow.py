"""The Prefect `data_refresh` flow runs every stage through its task, against a real
(ephemeral, test-harness) Prefect API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_data_refresh_flow_runs_all_stages_and_records_task_runs(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.data_refresh import data_refresh

    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)

    # no fluency model: the flow is under test, not the filter (saves materialising SmolLM2)
    overrides = {"split.test": 0.2, "augment.max_rows": 10, "augment.filter.fluency_model": None}
    state = data_refresh(overrides=overrides, return_state=True)
    assert state.is_completed()
    summaries = state.result()
    assert list(summaries) == ["ingest", "clean", "validate", "split", "augment"]
    assert summaries["split"]["rows"] == summaries["validate"]["rows_valid"]
    test_share = summaries["split"]["rows_by_split"]["test"] / summaries["split"]["rows"]
    assert 0.15 < test_share < 0.25  # the override reached the stage
    for name in ("train", "validation", "test"):
        assert (tmp_path / "data" / "splits" / f"{name}.parquet").exists()

    import anyio

    async def task_names() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
            return sorted(r.name.split("-")[0] for r in runs)

    assert anyio.run(task_names) == [
        "augment",
        "clean",
        "close",
        "ingest",
        "open",
        "split",
        "validate",
    ]
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["split"]["test"] == 0.1


def test_data_refresh_fn_runs_the_stages_without_a_flow_run(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.data_refresh import data_refresh

    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the embedded defaults
    summaries = data_refresh.fn("params.yaml", {"augment.enabled": False})
    assert summaries["augment"]["rows_added"] == 0
    assert summaries["split"]["rows"] == summaries["validate"]["rows_valid"] > 1000
