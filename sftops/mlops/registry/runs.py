"""One pipeline run = one MLflow run: flattened params, the training curve, the evaluation with
its CI bounds, reports and plots, lineage tags; and reading a logged candidate back."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sftops.mlops.registry.store import DEFAULT_EXPERIMENT, ensure_experiment, mlflow_client
from sftops.mlops.registry.values import (
    MAX_PARAM_VALUE,
    chunks,
    finite,
    key,
    tag_value,
    truncate,
)

if TYPE_CHECKING:
    from mlflow.entities import Run

log = logging.getLogger(__name__)

TRAINING_SERIES = ("train_loss", "val_loss", "lr", "grad_norm")
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
EVALUATION_ARTIFACT = "eval/metrics.json"  # the version's own evaluation, in its run
CANDIDATE = "candidate."  # prefix of the fine-tuned model's metrics in a run


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys with string values (lists as JSON), truncated to MLflow's
    6000-character value limit.

    >>> flatten_params({"train": {"lr": 0.0001, "lora": {"target_modules": None}},
    ...                 "clean": {"languages": ["en", "zh"]}})
    {'train.lr': '0.0001', 'train.lora.target_modules': 'null', 'clean.languages': '["en", "zh"]'}
    """
    flat: dict[str, str] = {}
    for name, value in params.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{dotted}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        flat[key(dotted)] = truncate(text, MAX_PARAM_VALUE)
    return flat


def evaluation_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Flatten an evaluate report into MLflow metric names.

    ``<model>.<metric>`` for every numeric per-model value (``bleu_by_lang`` as
    ``<model>.bleu.<lang>``), ``<model>.<metric>.ci_low/ci_high`` from the bootstrap intervals,
    and ``<pair>.<metric>`` / ``.ci_low`` / ``.ci_high`` / ``.p_value`` for each difference
    (``candidate_vs_base.token_f1``). NaN and non-numeric values are left out.

    >>> evaluation_metrics({"test_rows": 3, "models": {"base": {"token_f1": 0.5, "x": "s"}},
    ...     "differences": {"candidate_vs_base": {"chrf": {"diff": 1.0, "ci": [0.5, 1.5],
    ...     "p_value": 0.02}}}})  # doctest: +NORMALIZE_WHITESPACE
    {'test_rows': 3.0, 'base.token_f1': 0.5, 'candidate_vs_base.chrf': 1.0,
     'candidate_vs_base.chrf.ci_low': 0.5, 'candidate_vs_base.chrf.ci_high': 1.5,
     'candidate_vs_base.chrf.p_value': 0.02}
    """
    out: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        number = finite(value)
        if number is not None:
            out[key(name)] = number

    for name in ("test_rows", "skipped_no_reference"):
        put(name, metrics.get(name))
    for model, values in (metrics.get("models") or {}).items():
        for metric, value in values.items():
            if metric == "bleu_by_lang" and isinstance(value, dict):
                for lang, score in value.items():
                    put(f"{model}.bleu.{lang}", score)
            else:
                put(f"{model}.{metric}", value)
    for model, per_metric in (metrics.get("intervals") or {}).items():
        for metric, interval in per_metric.items():
            ci = interval.get("ci") or [None, None]
            put(f"{model}.{metric}.ci_low", ci[0])
            put(f"{model}.{metric}.ci_high", ci[1])
    for pair, per_metric in (metrics.get("differences") or {}).items():
        for metric, d in per_metric.items():
            ci = d.get("ci") or [None, None]
            put(f"{pair}.{metric}", d.get("diff"))
            put(f"{pair}.{metric}.ci_low", ci[0])
            put(f"{pair}.{metric}.ci_high", ci[1])
            put(f"{pair}.{metric}.p_value", d.get("p_value"))
    return out


def logged_candidate(run: Run) -> tuple[dict[str, float], str | None]:
    """What :func:`log_pipeline_run` recorded of the fine-tuned model: its ``candidate.<metric>``
    values (no CI bounds or per-language splits) and the ``test_set`` tag (``None`` if absent)."""
    metrics = {
        k.removeprefix(CANDIDATE): v
        for k, v in run.data.metrics.items()
        if k.startswith(CANDIDATE) and k.count(".") == 1
    }
    return metrics, run.data.tags.get("test_set")


def _training_metrics(train_report: dict[str, Any], timestamp: int) -> list[Any]:
    from mlflow.entities import Metric

    rows: list[Any] = []
    for entry in train_report.get("history") or []:
        step = entry.get("step")
        if not isinstance(step, int):
            continue
        for name in TRAINING_SERIES:
            value = finite(entry.get(name))
            if value is not None:
                rows.append(Metric(name, value, timestamp, step))
    for name, value in train_report.items():
        number = finite(value)
        if number is not None:
            rows.append(Metric(key(f"train.{name}"), number, timestamp, 0))
    return rows


def _artifact_folder(path: Path) -> str:
    return "plots" if path.suffix.lower() in (".png", ".svg", ".jpg", ".html") else "reports"


def log_pipeline_run(
    params_dict: dict[str, Any],
    train_report: dict[str, Any],
    metrics: dict[str, Any],
    artifacts: Sequence[Path],
    lineage: dict[str, Any],
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    root: Path | None = None,
) -> str:
    """Record one pipeline run; returns its run id.

    Params: ``params_dict`` flattened (:func:`flatten_params`). Metrics: the training history
    (``train_loss``, ``val_loss``, ``lr``, ``grad_norm`` at their ``step``), scalar training
    figures as ``train.<name>``, and the evaluation (:func:`evaluation_metrics`). Tags: the
    lineage, ``test_set`` (fingerprint of the evaluated rows). Artifacts: each file of
    ``artifacts`` under ``reports/`` (images under ``plots/``), folders under their name; the
    metrics and training report also as ``eval/metrics.json`` / ``eval/train_report.json``.
    Missing artifact paths are skipped (tag ``artifacts.missing``), not fatal. If logging fails
    half-way the run is marked FAILED and the error propagates.
    """
    from mlflow.entities import Metric, Param, RunStatus, RunTag

    client = mlflow_client(root)
    experiment_id = ensure_experiment(experiment, root)
    tags = {key(k): tag_value(v) for k, v in lineage.items()}
    tags["sftops.kind"] = "pipeline"
    if metrics.get("test_set"):
        tags["test_set"] = str(metrics["test_set"])
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id: str = run.info.run_id
    try:
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in flatten_params(params_dict).items()]
        for chunk in chunks(params, PARAMS_PER_BATCH):
            client.log_batch(run_id, params=chunk)
        series = _training_metrics(train_report, now)
        series += [Metric(k, v, now, 0) for k, v in evaluation_metrics(metrics).items()]
        for chunk in chunks(series, METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=chunk)
        missing: list[str] = []
        for path in map(Path, artifacts):
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                client.log_artifact(run_id, str(path), artifact_path=_artifact_folder(path))
            else:
                missing.append(str(path))
        if missing:
            log.warning("artifacts not found, not logged: %s", ", ".join(missing))
            client.log_batch(run_id, tags=[RunTag("artifacts.missing", tag_value(missing))])
        client.log_dict(run_id, metrics, EVALUATION_ARTIFACT)
        client.log_dict(run_id, train_report, "eval/train_report.json")
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id
