"""`sftops ablate augment` end to end on a tiny model: two trainings, one comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sftops.config import load_params
from sftops.mlops.ablation import ARMS, AblationSetting, run_ablation
from tests.assets.tiny_models import tiny_llama

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _params_with_splits(repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Params on a tiny model, the data stages run on the sample data into ``tmp_path``."""
    from sftops.mlops.pipeline import DATA_STAGES, stage_function

    model = tiny_llama(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    overrides = {
        "train.base_model": str(model),
        "train.max_steps": 2,
        "train.eval_every": 2,
        "train.save_every": 2,
        "evaluate.generation.max_new_tokens": 4,
        "augment.backtranslation.enabled": False,
        "augment.filter.fluency_model": None,
        "paths.cache_dir": str(tmp_path / "cache"),
        "paths.splits_dir": str(tmp_path / "splits"),
        "paths.ingested": str(tmp_path / "ingested.parquet"),
        "paths.cleaned": str(tmp_path / "cleaned.parquet"),
        "paths.validated": str(tmp_path / "validated.parquet"),
        "paths.train_aug": str(tmp_path / "splits" / "train_aug.parquet"),
        "paths.quarantine_dir": str(tmp_path / "quarantine"),
        "paths.reports_dir": str(tmp_path / "reports"),
    }
    params = load_params(repo_root / "params.yaml", overrides)
    params = params.model_copy(
        update={
            "ingest": params.ingest.model_copy(
                update={
                    "sources": [
                        s.model_copy(update={"path": str(repo_root / s.path)})
                        for s in params.ingest.sources
                    ]
                }
            )
        }
    )
    for stage in DATA_STAGES:
        if stage != "augment":
            stage_function(stage)(params)
    return params


def test_ablation_trains_both_arms_on_the_same_rows_and_logs_one_mlflow_run(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = _params_with_splits(repo_root, tmp_path, monkeypatch)
    setting = AblationSetting(
        "tiny", train_rows=20, test_rows=8, tasks=("classification",), languages=("en",)
    )
    summary = run_ablation(params, setting, tmp_path / "out")
    arms = summary["arms"]
    assert arms[ARMS[1]]["train_rows"] == 20 and arms[ARMS[0]]["train_rows"] > 20
    assert arms[ARMS[0]]["train_summary"]["steps"] == arms[ARMS[1]]["train_summary"]["steps"] == 2
    assert summary["test_rows"] == 8
    comparison = summary["comparison"]
    assert set(comparison) >= {"token_f1", "loss", "verdict"}
    assert (
        comparison["token_f1"]["ci"][0]
        <= comparison["token_f1"]["diff"]
        <= comparison["token_f1"]["ci"][1]
    )
    saved = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert saved["comparison"] == json.loads(json.dumps(comparison))
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sftops-ablation").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == summary["mlflow_run_id"]
    assert "token_f1.diff_ci_low" in runs[0].data.metrics
    assert runs[0].data.tags["verdict"] == comparison["verdict"]


def test_seeds_and_unused_train_rows_widen_the_ablation(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.io import read_table
    from sftops.mlops.ablation import select_rows, unused_train_rows

    params = _params_with_splits(repo_root, tmp_path, monkeypatch)
    setting = AblationSetting(
        "wide",
        train_rows=20,
        tasks=("classification",),
        languages=("en",),
        test_unused_train=True,
        seeds=2,
    )
    summary = run_ablation(params, setting, tmp_path / "out", mlflow=False)
    splits = {s: read_table(params.paths.split(s)) for s in ("train", "test")}
    pool = select_rows(splits["train"], ("classification",), ("en",), None, 0)
    trained = select_rows(splits["train"], ("classification",), ("en",), 20, 0)
    unused = unused_train_rows(pool, trained)
    assert 0 < len(unused) <= len(pool) - len(trained)
    assert not set(unused["row_id"]) & set(trained["row_id"])
    test = select_rows(splits["test"], ("classification",), ("en",), None, 0)
    assert summary["test_rows"] == len(test) + len(unused)
    for arm in summary["arms"].values():
        assert [s["seed"] for s in arm["per_seed"]] == [0, 1]
    rows = json.loads((tmp_path / "out" / "wide.rows.json").read_text())
    assert len(rows[ARMS[0]]["row_loss"]) == summary["test_rows"]
