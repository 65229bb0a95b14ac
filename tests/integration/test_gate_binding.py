"""The gate for version N decides on version N's own recorded evaluation, read from the registry:
never on a report that happens to be on disk, never on another version's numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.mlops import registry as R
from sftops.mlops.release import decide, run_promote
from tests.assets.tiny_models import tiny_llama
from tests.registry_data import LINEAGE, TRAIN_REPORT, fake_metrics

pytestmark = pytest.mark.integration
PARAMS = Params()
NAME = PARAMS.register_.model_name


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def register(model_dir: Path, evaluation: dict[str, Any] | None) -> str:
    run_id = R.log_pipeline_run(
        {"train": {"lr": 1e-4}}, TRAIN_REPORT, evaluation or {"models": {}}, [], LINEAGE
    )
    return R.register_model(run_id, model_dir, NAME, LINEAGE, metrics=evaluation)


def test_each_version_is_gated_on_its_own_recorded_evaluation(store: Path) -> None:
    model_dir = tiny_llama(store / "models")
    v1 = register(model_dir, fake_metrics(0.55, None))
    v2 = register(model_dir, fake_metrics(0.40, None))

    # The last evaluation on disk is v2's: gating v1 must still cite v1's numbers.
    (store / "reports").mkdir()
    (store / "reports" / "metrics.json").write_text(json.dumps(fake_metrics(0.40, None)))
    first = decide(PARAMS, v1)
    assert first.promote and first.compared_to == "base"
    assert any(r.startswith("token_f1: +0.250 vs base") for r in first.reasons), first.reasons
    assert run_promote(PARAMS, v1)["promoted"]

    # v2 was evaluated before v1 became champion: the gate reads v1's own recorded evaluation
    # as the champion's numbers (same test set), and v2 is worse.
    second = decide(PARAMS, v2)
    assert not second.promote and second.compared_to == "champion"
    assert any(r.startswith("token_f1: -0.150 vs champion") for r in second.reasons)

    # A version evaluated against champion v1 on the same rows: the paired comparison counts.
    compared = fake_metrics(0.70, 0.55)
    compared["reference"] = {"name": "champion", "id": f"{NAME}/v{v1}", "version": v1}
    v3 = register(model_dir, compared)
    third = decide(PARAMS, v3)
    assert third.promote, third.reasons
    assert any("+0.150 vs champion (95% CI [+0.130, +0.170])" in r for r in third.reasons)

    # Another test set: numbers that do not compare.
    v4 = register(model_dir, fake_metrics(0.90, None, test_set="other-rows"))
    fourth = decide(PARAMS, v4)
    assert not fourth.promote
    assert "different test sets" in fourth.reasons[0]


def test_a_version_without_recorded_evaluation_is_refused_in_one_line(store: Path) -> None:
    version = register(tiny_llama(store / "models"), None)
    with pytest.raises(SftopsError, match=f"version {version} has no recorded evaluation"):
        decide(PARAMS, version)


def test_a_tampered_evaluation_artifact_is_refused(store: Path) -> None:
    from mlflow import MlflowClient

    version = register(tiny_llama(store / "models"), fake_metrics(0.55, None))
    client = MlflowClient()
    mv = client.get_model_version(NAME, version)
    client.log_dict(mv.run_id, fake_metrics(0.99, None), R.EVALUATION_ARTIFACT)
    with pytest.raises(SftopsError, match="does not match the hash"):
        decide(PARAMS, version)


def test_promote_cli_works_from_an_empty_folder(store: Path, tmp_path: Path) -> None:
    version = register(tiny_llama(store / "models"), fake_metrics(0.55, None))
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["sftops", "promote", "--version", version],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"version {version}: promoted to champion" in done.stdout
    assert "+0.250 vs base" in done.stdout
    champion = R.champion_version(NAME)
    assert champion is not None and str(champion.version) == version
