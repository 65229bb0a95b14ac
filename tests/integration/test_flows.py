"""The `promote` and `evaluate_model` flows against a real (test-harness) Prefect API and a
temporary SQLite MLflow store holding a tiny registered model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sftops.mlops import registry as R
from tests.assets.tiny_models import tiny_llama
from tests.registry_data import LINEAGE, TRAIN_REPORT, fake_metrics

pytestmark = pytest.mark.integration
NAME = "sftops-chat"  # params.yaml's default register.model_name


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A scratch project: embedded default params, a store with one registered tiny model and a
    reports/metrics.json whose candidate passes the gate against the base model."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    monkeypatch.chdir(tmp_path)
    metrics = fake_metrics(0.55, None)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    model_dir = tiny_llama(tmp_path / "models")
    run_id = R.log_pipeline_run({"train": {"lr": 1e-4}}, TRAIN_REPORT, metrics, [], LINEAGE)
    version = R.register_model(run_id, model_dir, NAME, LINEAGE, metrics=metrics)
    return {"root": tmp_path, "version": version, "model_dir": model_dir}


def _champion() -> str | None:
    mv = R.champion_version(NAME)
    return None if mv is None else str(mv.version)


def test_promote_without_approval_moves_champion(
    prefect_harness: None, project: dict[str, Any]
) -> None:
    from flows.promote import promote

    state = promote(version=project["version"], return_state=True)
    assert state.is_completed()
    out = state.result()
    assert out["promoted"] is True
    assert _champion() == project["version"]
    mv = R.champion_version(NAME)
    assert mv is not None and mv.tags["promotion.decision"] == "promoted"


def test_promote_with_approval_pauses_until_resumed(
    prefect_harness: None, project: dict[str, Any]
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
    from prefect.client.schemas.filters import FlowRunFilterStateName as StateName
    from prefect.flow_runs import resume_flow_run

    from flows.promote import promote

    result: dict[str, Any] = {}

    def run() -> None:
        result["state"] = promote(
            version=project["version"], require_approval=True, return_state=True
        )

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    paused = None
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while paused is None and time.monotonic() < deadline and worker.is_alive():
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=StateName(any_=["Paused"]))
                )
            )
            paused = runs[0] if runs else None
            time.sleep(0.5)
    assert paused is not None, f"no paused run (thread alive: {worker.is_alive()}, {result})"
    assert _champion() is None  # nothing moves before the answer

    resume_flow_run(paused.id, run_input={"approved": True, "reviewer": "t", "comment": "ok"})
    worker.join(60)
    assert not worker.is_alive(), "the flow did not finish after resume"
    state = result["state"]
    assert state.is_completed(), state
    assert state.result()["approved_by"] == "t"
    assert _champion() == project["version"]
    mv = R.champion_version(NAME)
    assert mv is not None and mv.tags["promotion.approved_by"] == "t"


def test_evaluate_model_helpers_resolve_and_download(project: dict[str, Any]) -> None:
    from sftops.mlops.registry import download_version, resolve_version

    version = project["version"]
    assert resolve_version(NAME, "challenger") == version
    assert resolve_version(NAME, f"v{version}") == version
    with pytest.raises(Exception, match="no version or alias"):
        resolve_version(NAME, "champion")
    folder = download_version(NAME, version, project["root"] / "dl" / "m")
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_served_deployments_are_the_tables_process_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """flows/deploy.py serves what sftops/stack/deployments.py declares, nothing else."""
    from flows.deploy import deployments
    from sftops.stack.deployments import of_pool

    monkeypatch.setenv("SFTOPS_RUN_CONCURRENCY", "3")
    served = deployments(cron="5 4 * * *")
    rows = of_pool("process")
    assert [f"{d.flow_name}/{d.name}" for d in served] == [r.full_name for r in rows]
    for deployment, row in zip(served, rows, strict=True):
        assert deployment.description == row.description
        assert deployment.tags == list(row.tags)
        limit = deployment.concurrency_limit
        assert limit == row.concurrency_limit({"SFTOPS_RUN_CONCURRENCY": "3"})
        crons = [s.schedule.cron for s in deployment.schedules]
        assert crons == (["5 4 * * *"] if row.cron else [])
    assert served[0].concurrency_limit == 3  # retrain/nightly: SFTOPS_RUN_CONCURRENCY
    assert all(not d.schedules for d in deployments(cron=None))
