"""The registry against a real MLflow store: a temporary SQLite database per test.

One lifecycle test walks log -> register -> promote -> promote -> rollback on two versions of a
tiny model, with the error cases on the way; the others need no store or only a refusal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from sftops.errors import SftopsError
from sftops.mlops import registry as R
from sftops.mlops.promotion import Decision, GateConfig, decide_from_metrics
from tests.assets.tiny_models import tiny_llama
from tests.registry_data import LINEAGE, TRAIN_REPORT, fake_metrics

pytestmark = pytest.mark.integration

NAME = "sftops-chat-test"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    return db


def test_registry_lifecycle(store: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    started = time.perf_counter()
    model_dir = tiny_llama(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "evaluation.md").write_text("# Evaluation\n", encoding="utf-8")
    (reports / "metrics.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    artifacts = [reports / "evaluation.md", reports / "metrics.png", reports / "missing.json"]
    params = {
        "train": {"lr": 1e-4, "lora": {"target_modules": None}},
        "clean": {"languages": ["en", "zh"]},
        "evaluate": {"label_aliases": {"正面": "positive"}},
        "ingest": {"sources": [{"path": "x" * 7000}]},
    }
    gate = GateConfig()
    client = MlflowClient()

    # ---- run 1: the first model, judged against the base model
    metrics1 = fake_metrics(0.42, None)
    run1 = R.log_pipeline_run(params, TRAIN_REPORT, metrics1, artifacts, LINEAGE, run_name="r1")
    run = client.get_run(run1)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.0001"
    assert run.data.params["clean.languages"] == '["en", "zh"]'
    assert len(run.data.params["ingest.sources"]) == R.MAX_PARAM_VALUE
    assert "truncated" in run.data.params["ingest.sources"]
    assert run.data.metrics["candidate.token_f1"] == pytest.approx(0.42)
    assert run.data.metrics["candidate.token_f1.ci_low"] == pytest.approx(0.39)
    assert run.data.metrics["candidate_vs_base.token_f1.ci_high"] == pytest.approx(0.14)
    assert run.data.metrics["base.bleu.zh"] == pytest.approx(6.0)
    assert [m.step for m in client.get_metric_history(run1, "train_loss")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run1, "val_loss")] == [0, 3]
    assert run.data.tags["git.commit"] == LINEAGE["git.commit"]
    assert run.data.tags["dvc.test_data_md5"] == LINEAGE["dvc.test_data_md5"]
    assert run.data.tags["test_set"] == "fp1"
    assert "missing.json" in run.data.tags["artifacts.missing"]
    logged = {f.path for f in client.list_artifacts(run1, "reports")}
    logged |= {f.path for f in client.list_artifacts(run1, "plots")}
    assert logged == {"reports/evaluation.md", "plots/metrics.png"}
    # artifacts sit beside the database, not in the current directory
    assert (store.parent / "mlruns").is_dir()

    v1 = R.register_model(run1, model_dir, NAME, LINEAGE, metrics=metrics1)
    assert v1 == "1"
    mv1 = client.get_model_version(NAME, v1)
    assert mv1.tags["git.commit"] == LINEAGE["git.commit"]
    assert mv1.tags["metric.token_f1"] == "0.42"
    assert json.loads(mv1.tags["metrics"])["test_set"] == "fp1"
    assert len(mv1.tags["model.sha256"]) == 64
    assert "registered from run" in str(mv1.description)
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "1"
    assert R.champion_version(NAME) is None
    assert R.load_champion_metrics(NAME) is None
    assert R.download_champion(NAME, tmp_path / "champion") is None

    decision1 = decide_from_metrics(metrics1, gate, R.load_champion_metrics(NAME))
    assert decision1.promote and decision1.compared_to == "base"
    assert R.promote(NAME, v1, decision1, "first model beats base") is True
    assert str(R.champion_version(NAME).version) == "1"  # type: ignore[union-attr]

    # ---- run 2: evaluated against the downloaded champion on the same test set
    champion_dir = R.download_champion(NAME, tmp_path / "champion")
    assert champion_dir is not None and (champion_dir / "model.safetensors").is_file()
    assert R.download_champion(NAME, tmp_path / "champion") == champion_dir  # cached
    assert R.load_champion_metrics(NAME)["token_f1"] == pytest.approx(0.42)  # type: ignore[index]
    metrics2 = fake_metrics(0.55, 0.42)
    run2 = R.log_pipeline_run(params, TRAIN_REPORT, metrics2, artifacts[:1], LINEAGE)
    v2 = R.register_model(run2, model_dir, NAME, LINEAGE, metrics=metrics2)
    assert v2 == "2"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    # a rejected challenger is recorded but does not move the alias
    worse = fake_metrics(0.40, 0.42)
    rejected = decide_from_metrics(worse, gate)
    assert not rejected.promote
    assert R.promote(NAME, v2, rejected, "nightly gate") is False
    assert client.get_model_version(NAME, v2).tags["promotion.decision"] == "rejected"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    decision2 = decide_from_metrics(metrics2, gate)
    assert decision2.promote and decision2.compared_to == "champion"
    assert R.promote(NAME, v2, decision2, "beats v1", approved_by="alice") is True
    aliases = client.get_registered_model(NAME).aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "2", "challenger": "2"}
    mv2 = client.get_model_version(NAME, v2)
    assert mv2.tags["promotion.decision"] == "promoted"
    assert mv2.tags["promotion.approved_by"] == "alice"
    assert "token_f1: +0.130 vs champion" in mv2.tags["promotion.reasons"]
    assert "promoted as champion, approved by alice: beats v1" in str(mv2.description)
    assert "rejected as champion" in str(mv2.description)  # the history stays
    assert client.get_model_version(NAME, v1).tags["superseded_by"] == "2"
    assert json.loads(client.get_registered_model(NAME).tags["previous_champion"]) == ["1"]

    # ---- downloads: the same version is reused, another version or an unmarked folder replaced
    shared = tmp_path / "downloads" / "m"
    assert R.download_version(NAME, v1, shared) == shared
    (shared / "sentinel").write_text("stays while the folder holds v1", encoding="utf-8")
    assert R.download_version(NAME, v1, shared) == shared and (shared / "sentinel").is_file()
    assert R.download_champion(NAME, shared) == shared  # the champion is v2 now
    assert json.loads((shared / ".sftops-registry.json").read_text())["version"] == "2"
    assert not (shared / "sentinel").exists() and (shared / "model.safetensors").is_file()
    unmarked = tmp_path / "downloads" / "unmarked"
    unmarked.mkdir()
    (unmarked / "config.json").write_text("{}", encoding="utf-8")
    assert R.download_version(NAME, f"{v2}", unmarked) == unmarked
    assert (unmarked / "model.safetensors").is_file()
    assert not list(shared.parent.glob(".*.download-*"))  # no temporary folder left behind
    with pytest.raises(SftopsError, match=f"^model {NAME} has no version 99$"):
        R.download_version(NAME, 99, tmp_path / "downloads" / "none")

    # ---- errors: a version that does not exist
    with pytest.raises(SftopsError) as missing:
        R.promote(NAME, 99, decision2, "typo")
    assert str(missing.value) == f"model {NAME} has no version 99"

    # ---- rollback: champion back to 1, both versions record it
    assert R.rollback(NAME, "bad answers reported") == "1"
    assert str(client.get_registered_model(NAME).aliases["champion"]) == "1"
    mv1, mv2 = client.get_model_version(NAME, v1), client.get_model_version(NAME, v2)
    assert mv1.tags["rollback.replaced"] == "2"
    assert mv1.tags["rollback.reason"] == "bad answers reported"
    assert mv2.tags["rollback.restored"] == "1"
    assert "rolled back" in str(mv2.description) and "restored as champion" in str(mv1.description)
    assert json.loads(client.get_registered_model(NAME).tags["previous_champion"]) == []
    with pytest.raises(SftopsError, match=r"^model .* has no previous champion to roll back to$"):
        R.rollback(NAME, "again")

    # ---- the champion loads back through MLflow and answers
    import mlflow

    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    answers = loaded.predict(
        pd.DataFrame({"prompt": ["What is the capital of France?", "你好"]}),
        params={"max_new_tokens": 8},
    )
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    # ... the same answers as sftops' own generation on the registered folder
    from sftops.config import GenerationParams
    from sftops.modeling.formatting import generation_prompt
    from sftops.modeling.generate import generate
    from sftops.modeling.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(champion_dir)
    model = load_causal_lm(champion_dir, tokenizer=tokenizer)
    prompts = [
        generation_prompt(tokenizer, [{"role": "user", "content": p}])
        for p in ("What is the capital of France?", "你好")
    ]
    expected = generate(model, tokenizer, prompts, GenerationParams(max_new_tokens=8))
    assert answers == [g.text for g in expected]
    # the process-wide MLflow settings are not left pointing at this store
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{store}"
    assert time.perf_counter() - started < 60


def test_unreachable_server_is_one_line_and_quick(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.perf_counter()
    with pytest.raises(SftopsError) as err:
        R.log_pipeline_run({}, {}, {}, [], LINEAGE)
    assert time.perf_counter() - started < 5
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"MLflow tracking server {uri} unreachable: ")
    assert message.endswith("; the local run folder is kept")
    with pytest.raises(SftopsError, match="unreachable"):
        R.promote(NAME, 1, Decision.manual("x"), "x")
    # credentials never appear in the message
    with pytest.raises(SftopsError) as secret:
        R.check_reachable(f"http://user:hunter2@127.0.0.1:{port}")
    assert "hunter2" not in str(secret.value)


def test_register_refuses_unknown_lineage_and_pickles(store: Path, tmp_path: Path) -> None:
    model_dir = tiny_llama(tmp_path)
    unknown = {**LINEAGE, "git.commit": "unknown", "dvc.test_data_md5": "unknown"}
    with pytest.raises(SftopsError) as err:
        R.register_model("no-run", model_dir, NAME, unknown)
    assert "lineage unknown for git.commit, dvc.test_data_md5" in str(err.value)
    (model_dir / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(SftopsError, match="only safetensors"):
        R.register_model("no-run", model_dir, NAME, LINEAGE)
    assert not store.exists()  # refused before touching the store


def test_lineage_from_repo(tmp_path: Path) -> None:
    bare = R.lineage_from_repo(tmp_path / "nothing-here")
    assert bare["git.commit"] == "unknown" and bare["git.dirty"] == "unknown"
    assert bare["dvc.train_data_md5"] == "unknown" and bare["rows.test"] == "unknown"
    assert set(R.missing_lineage(bare)) == set(R.REQUIRED_LINEAGE)

    repo = tmp_path / "repo"
    (repo / "data" / "splits").mkdir(parents=True)
    (repo / "models" / "sft").mkdir(parents=True)
    (repo / "models" / "sft" / "train_params.json").write_text(
        json.dumps({"train": {"base_model": "smollm2-135m-instruct"}}), encoding="utf-8"
    )
    pd.DataFrame({"a": range(7)}).to_parquet(repo / "data" / "splits" / "test.parquet")
    (repo / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n"
        "  split:\n    outs:\n    - path: data/splits/test.parquet\n      md5: aaa\n"
        "  augment:\n    outs:\n    - path: data/splits/train_aug.parquet\n      md5: bbb\n"
        "  train:\n    outs:\n    - path: models/sft\n      md5: ccc.dir\n",
        encoding="utf-8",
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    lineage = R.lineage_from_repo(repo)
    assert len(lineage["git.commit"]) == 40 and lineage["git.dirty"] == "false"
    assert lineage["dvc.test_data_md5"] == "aaa"
    assert lineage["dvc.train_data_md5"] == "bbb"
    assert lineage["dvc.model_md5"] == "ccc.dir"
    assert lineage["base_model"] == "smollm2-135m-instruct"
    assert lineage["rows.test"] == "7" and lineage["rows.train"] == "unknown"
    assert R.missing_lineage(lineage) == []
    (repo / "untracked.txt").write_text("x", encoding="utf-8")
    assert R.lineage_from_repo(repo)["git.dirty"] == "true"
    (repo / "dvc.lock").write_text(":\n  - [unbalanced", encoding="utf-8")
    assert R.lineage_from_repo(repo)["dvc.test_data_md5"] == "unknown"


def test_default_store_is_sqlite_in_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = R.tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert R.artifact_location(uri) == (tmp_path.resolve() / "mlruns").as_uri()
    assert R.artifact_location("http://127.0.0.1:5000") is None
    experiment = R.ensure_experiment("local", root=tmp_path)
    assert R.ensure_experiment("local", root=tmp_path) == experiment
    assert (tmp_path / "mlflow.db").is_file()
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_description_stays_within_the_column() -> None:
    from types import SimpleNamespace

    from sftops.mlops.registry.aliases import append_description

    class FakeClient:
        description = ""

        def update_model_version(self, name: str, version: str, description: str) -> None:
            self.description = description

    client = FakeClient()
    mv = SimpleNamespace(name=NAME, version="1", description="registered from run r1")
    for i in range(200):
        append_description(client, mv, f"[{i}] promoted as champion: " + "x" * 80)  # type: ignore[arg-type]
        mv.description = client.description
    assert len(client.description) <= R.MAX_DESCRIPTION
    entries = client.description.split("\n\n")
    assert entries[0] == "registered from run r1" and entries[-1].startswith("[199]")


def _prepare(uri: str) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    R.ensure_experiment("race")


def test_runs_starting_together_on_a_fresh_store_both_get_a_migrated_store(tmp_path: Path) -> None:
    """Two runs starting at once used to both run MLflow's migrations on a fresh mlflow.db."""
    import multiprocessing

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_prepare, args=(uri,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
