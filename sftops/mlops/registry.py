"""Every MLflow call of the project: tracking runs, the model registry, aliases, rollback.

Store: ``MLFLOW_TRACKING_URI`` when set (a server, or any store MLflow accepts), else a local
SQLite database ``<root>/mlflow.db`` with artifacts in ``<root>/mlruns`` (MLflow 3.17 would put
SQLite-store artifacts under the *current directory's* ``./mlruns``; the experiment's artifact
location is set explicitly so that the store and its artifacts stay together). For an http(s)
server, :func:`check_reachable` probes ``/health`` with a short timeout first, so an unreachable
server is one clear line instead of minutes of MLflow's own retries.

Registry conventions:

- every pipeline run is one MLflow run (:func:`log_pipeline_run`) with flattened params,
  per-step training metrics, evaluation metrics with their CI bounds, the reports and plots, and
  lineage tags (:func:`lineage_from_repo`);
- :func:`register_model` logs the fine-tuned folder as a pyfunc model (:class:`ChatModel`),
  registers a new version, tags it with lineage and metrics and points alias ``challenger`` at it;
- :func:`promote` records the gate's decision on the version (tags + description) and, when it
  says so, moves alias ``champion``; the champion it replaces is pushed on the model-level tag
  ``previous_champion`` (a JSON list) so that :func:`rollback` can move the alias back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel, Field

from sftops.errors import SftopsError
from sftops.mlops.promotion import Decision

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger("sftops.mlops.registry")

LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlruns"
DEFAULT_EXPERIMENT = "sftops"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"
MODEL_ARTIFACT = "model"  # name of the logged model inside the run
HF_ARTIFACT_KEY = "hf_model"  # key of the Hugging Face folder among the pyfunc artifacts
UNKNOWN = "unknown"
REQUIRED_LINEAGE = ("git.commit", "dvc.train_data_md5", "dvc.test_data_md5")
TRAINING_SERIES = ("train_loss", "val_loss", "lr", "grad_norm")
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# MLflow limits (mlflow.utils.validation): values truncated, batches split.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_DESCRIPTION = 5000  # model version description column
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
HEALTH_TIMEOUT_S = 3.0
EVALUATION_ARTIFACT = "eval/metrics.json"  # the version's own evaluation, in its run
EVALUATION_HASH_TAG = "evaluation.sha256"

_reachable: set[str] = set()
_prepared: set[str] = set()


# --------------------------------------------------------------------------- store and client


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(store_root(root) / LOCAL_DB).as_posix()}"


def store_root(root: Path | None = None) -> Path:
    """Where the local store lives: the main checkout, also for a run's workspace (a worktree
    of it), so that every run of a project shares one registry."""
    from sftops.mlops.workspace import project_root

    return project_root(root or Path.cwd())


def artifact_location(uri: str) -> str | None:
    """Artifact root for new experiments: ``mlruns`` beside a SQLite database; ``None`` (the
    server's default) for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return (_sqlite_path(uri).resolve().parent / LOCAL_ARTIFACTS).as_uri()


def _display(uri: str) -> str:
    """The URI without credentials (``user:password@``), for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """For http(s) tracking URIs, GET ``<uri>/health`` within ``timeout`` seconds.

    Raises :class:`SftopsError` (one line) when the server does not answer or answers 5xx.
    Local stores (SQLite, files) are not checked. A successful check is remembered per process.
    """
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme not in ("http", "https") or uri in _reachable:
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # something answers: let MLflow report what it is
            _reachable.add(uri)
            return
        problem = f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
        problem = _one_line(exc)
    else:
        _reachable.add(uri)
        return
    raise SftopsError(
        f"MLflow tracking server {_display(uri)} unreachable: {problem}; the local run folder is "
        "kept"
    )


def _sqlite_path(uri: str) -> Path:
    return Path(urllib.parse.unquote(uri.removeprefix("sqlite:///")).split("?", 1)[0])


def prepare_local_store(uri: str) -> None:
    """Create and migrate a SQLite store under an flock beside it, once per process.

    Two runs that start together against a fresh ``mlflow.db`` would otherwise both run
    MLflow's alembic migrations, and the loser fails with "table _alembic_tmp_params already
    exists". Servers (http) migrate their own store; nothing to do for them.
    """
    import fcntl

    if not uri.startswith("sqlite:///") or uri in _prepared:
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db = _sqlite_path(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with db.with_name(db.name + ".lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            SqlAlchemyStore(uri, artifact_location(uri) or "")
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    _prepared.add(uri)


def _client(root: Path | None = None) -> MlflowClient:
    """A client bound to the configured store (MLflow's global URIs are left alone)."""
    from mlflow import MlflowClient

    uri = tracking_uri(root)
    check_reachable(uri)
    prepare_local_store(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def _fluent(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``start_run``, ``log_model``, ``register_model``) at ``uri``
    for the block, then restore it.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (and the registry one) into
    ``os.environ``; left there, the first store used would silently become the store of every
    later call in the process, whatever its ``root``. So both the module globals and the
    environment variables are restored.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    prepare_local_store(uri)
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {name: os.environ.get(name) for name in names}
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        if saved_tracking is None:
            tracking_utils._tracking_uri = None
        else:
            mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ensure_experiment(name: str = DEFAULT_EXPERIMENT, root: Path | None = None) -> str:
    """The id of experiment ``name``, created (with an explicit artifact location for a local
    SQLite store) or restored from the trash when needed."""
    client = _client(root)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = artifact_location(tracking_uri(root))
        return str(client.create_experiment(name, artifact_location=location))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


# --------------------------------------------------------------------------- lineage


def _dvc_outs(root: Path) -> dict[str, str]:
    """``{out path: md5}`` over every stage of ``dvc.lock`` (empty when absent or unreadable)."""
    import yaml

    lock = root / "dvc.lock"
    try:
        data = yaml.safe_load(lock.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    outs: dict[str, str] = {}
    stages = data.get("stages", {}) if isinstance(data, dict) else {}
    for stage in stages.values() if isinstance(stages, dict) else []:
        for out in stage.get("outs", []) if isinstance(stage, dict) else []:
            if isinstance(out, dict) and out.get("path") and out.get("md5"):
                outs[str(PurePosixPath(str(out["path"]).rstrip("/")))] = str(out["md5"])
    return outs


def _parquet_rows(path: Path) -> str:
    try:
        import pyarrow.parquet as pq

        return str(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # missing, not parquet, unreadable: lineage never crashes
        return UNKNOWN


def _base_model(model_dir: Path) -> str:
    try:
        train_params = json.loads((model_dir / "train_params.json").read_text(encoding="utf-8"))
        return str(train_params["train"]["base_model"])
    except (OSError, ValueError, KeyError, TypeError):
        return UNKNOWN


def lineage_from_repo(
    root: Path,
    *,
    train_data: str = "data/splits/train_aug.parquet",
    test_data: str = "data/splits/test.parquet",
    model_dir: str = "models/sft",
    base_model: str | None = None,
) -> dict[str, str]:
    """Lineage tags of a checkout: git commit and dirty flag, the ``dvc.lock`` md5 of the train
    and test data and of the model folder, the base model and row counts.

    Anything that cannot be read (no git, not a repository, no ``dvc.lock``, a stage never run)
    is ``"unknown"``; this function never raises for a missing source.
    """
    root = Path(root)
    from sftops.mlops.versioning import git_commit

    commit, dirty = git_commit(root)
    outs = _dvc_outs(root)

    def md5(path: str) -> str:
        return outs.get(str(PurePosixPath(path.rstrip("/"))), UNKNOWN)

    return {
        "git.commit": commit,
        "git.dirty": UNKNOWN if commit == UNKNOWN else str(dirty).lower(),
        "dvc.train_data": train_data,
        "dvc.train_data_md5": md5(train_data),
        "dvc.test_data": test_data,
        "dvc.test_data_md5": md5(test_data),
        "dvc.model": model_dir,
        "dvc.model_md5": md5(model_dir),
        "base_model": base_model or _base_model(root / model_dir),
        "rows.train": _parquet_rows(root / train_data),
        "rows.test": _parquet_rows(root / test_data),
    }


def missing_lineage(lineage: dict[str, Any]) -> list[str]:
    """The :data:`REQUIRED_LINEAGE` keys that are absent, empty or ``"unknown"``."""
    return [
        key
        for key in REQUIRED_LINEAGE
        if str(lineage.get(key) or UNKNOWN).strip().lower() in ("", UNKNOWN)
    ]


# --------------------------------------------------------------------------- run logging


def _key(name: str) -> str:
    """A valid MLflow param/metric key: only ``[/\\w.\\- :]``, no ``..`` segments, ≤ 250 chars."""
    cleaned = "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in name)
    parts = [p for p in cleaned.strip("/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:MAX_KEY] or "_"


def _truncate(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    note = f"…[{len(value) - limit + 40} chars truncated]"
    return value[: limit - len(note)] + note


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys with string values (lists as JSON), truncated to MLflow's
    6000-character value limit.

    >>> flatten_params({"train": {"lr": 0.0001, "lora": {"target_modules": None}},
    ...                 "clean": {"languages": ["en", "zh"]}})
    {'train.lr': '0.0001', 'train.lora.target_modules': 'null', 'clean.languages': '["en", "zh"]'}
    """
    flat: dict[str, str] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{key}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        flat[_key(key)] = _truncate(text, MAX_PARAM_VALUE)
    return flat


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


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
        number = _finite(value)
        if number is not None:
            out[_key(name)] = number

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


def _training_metrics(train_report: dict[str, Any], timestamp: int) -> list[Any]:
    from mlflow.entities import Metric

    rows: list[Any] = []
    for entry in train_report.get("history") or []:
        step = entry.get("step")
        if not isinstance(step, int):
            continue
        for name in TRAINING_SERIES:
            value = _finite(entry.get(name))
            if value is not None:
                rows.append(Metric(name, value, timestamp, step))
    for name, value in train_report.items():
        number = _finite(value)
        if number is not None:
            rows.append(Metric(_key(f"train.{name}"), number, timestamp, 0))
    return rows


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _tag_value(value: Any) -> str:
    return _truncate(value if isinstance(value, str) else json.dumps(value), MAX_TAG_VALUE)


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
    from mlflow.entities import Param, RunStatus, RunTag

    client = _client(root)
    experiment_id = ensure_experiment(experiment, root)
    tags = {_key(k): _tag_value(v) for k, v in lineage.items()}
    tags["sftops.kind"] = "pipeline"
    if metrics.get("test_set"):
        tags["test_set"] = str(metrics["test_set"])
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id: str = run.info.run_id
    try:
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in flatten_params(params_dict).items()]
        for chunk in _chunks(params, PARAMS_PER_BATCH):
            client.log_batch(run_id, params=chunk)
        from mlflow.entities import Metric

        series = _training_metrics(train_report, now)
        series += [Metric(k, v, now, 0) for k, v in evaluation_metrics(metrics).items()]
        for chunk in _chunks(series, METRICS_PER_BATCH):
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
            client.log_batch(run_id, tags=[RunTag("artifacts.missing", _tag_value(missing))])
        client.log_dict(run_id, metrics, EVALUATION_ARTIFACT)
        client.log_dict(run_id, train_report, "eval/train_report.json")
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id


# --------------------------------------------------------------------------- the pyfunc model


class ChatModel(PythonModel):
    """Pyfunc wrapper of a fine-tuned Hugging Face folder, served with sftops' own chat code.

    Input (signature-checked): a DataFrame with a ``prompt`` column (the user message) and
    optionally ``system``. Output: one answer string per row. Prompts go through the model's
    chat template with the same helpers as training and evaluation
    (``formatting.generation_prompt``); decoding stops at the end of the assistant turn.
    Params: ``max_new_tokens``, ``strategy`` (greedy/beam/sample), ``temperature``, ``top_p``.
    Loading needs ``sftops`` (and torch/transformers) importable.
    """

    def load_context(self, context: Any) -> None:
        from sftops.modeling.models import load_causal_lm, load_tokenizer

        folder = context.artifacts[HF_ARTIFACT_KEY]
        self.tokenizer = load_tokenizer(folder)
        self.model = load_causal_lm(folder, tokenizer=self.tokenizer)

    # A DataFrame hint tells MLflow not to derive a signature from type hints: the explicit
    # signature from `_signature()` is the contract.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[str]:
        from sftops.config import GenerationParams
        from sftops.modeling.formatting import generation_prompt
        from sftops.modeling.generate import generate

        if isinstance(model_input, str):
            rows: list[dict[str, Any]] = [{"prompt": model_input}]
        elif isinstance(model_input, pd.DataFrame):
            rows = model_input.to_dict(orient="records")
        else:
            rows = [{"prompt": str(p)} for p in model_input]
        prompts = []
        for row in rows:
            system, prompt = row.get("system"), row.get("prompt")  # NaN/None when absent
            messages = []
            if isinstance(system, str) and system.strip():
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": prompt if isinstance(prompt, str) else ""})
            prompts.append(generation_prompt(self.tokenizer, messages))
        settings = {k: v for k, v in (params or {}).items() if v is not None}
        cfg = GenerationParams(**settings)
        return [g.text for g in generate(self.model, self.tokenizer, prompts, cfg)]


MODEL_CODE = '''"""sftops chat model, logged as MLflow "models from code" (no pickle)."""

import mlflow

from sftops.mlops.registry import ChatModel

mlflow.models.set_model(ChatModel())
'''
"""The script MLflow stores with the model and runs to load it (needs `sftops` importable)."""


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("string", "system", required=False)]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema(
            [
                ParamSpec("max_new_tokens", "long", 128),
                ParamSpec("strategy", "string", "greedy"),
                ParamSpec("temperature", "double", 0.7),
                ParamSpec("top_p", "double", 0.9),
            ]
        ),
    )


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for package in ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "sftops"):
        try:
            reqs.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            reqs.append(package)
    return reqs


def check_model_folder(model_dir: Path) -> None:
    """A loadable safetensors model folder: ``config.json``, at least one ``*.safetensors``,
    no pickled weight files (which could run code when loaded)."""
    if not (model_dir / "config.json").is_file():
        raise SftopsError("not a model folder (no config.json)", file=model_dir)
    files = [p for p in model_dir.rglob("*") if p.is_file()]
    pickled = sorted(p.name for p in files if p.suffix.lower() in PICKLED_WEIGHTS)
    if pickled:
        raise SftopsError(
            f"pickled weight files {', '.join(pickled)}: only safetensors are registered",
            file=model_dir,
        )
    if not any(p.suffix == ".safetensors" for p in files):
        raise SftopsError("no *.safetensors weights in the model folder", file=model_dir)


def folder_sha256(folder: Path) -> str:
    """Content hash of a folder (relative paths and bytes, sorted): what was registered."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _candidate_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    candidate = (metrics.get("models") or {}).get("candidate") or {}
    summary: dict[str, Any] = {
        k: v for k, v in candidate.items() if _finite(v) is not None and not isinstance(v, bool)
    }
    for key in ("test_set", "test_rows"):
        if key in metrics:
            summary[key] = metrics[key]
    return summary


def evaluation_sha256(evaluation: dict[str, Any]) -> str:
    """Hash of an evaluation report as JSON with sorted keys (what the version is tagged with).

    >>> evaluation_sha256({"b": 1, "a": 2}) == evaluation_sha256({"a": 2, "b": 1})
    True
    """
    text = json.dumps(evaluation, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_version_evaluation(
    name: str, version: str | int, *, root: Path | None = None
) -> dict[str, Any]:
    """The evaluation registered with ``name`` version ``version`` (its run's
    :data:`EVALUATION_ARTIFACT`, checked against the version's :data:`EVALUATION_HASH_TAG`).
    One-line :class:`SftopsError` when the version has none or it does not match."""
    client = _client(root)
    mv = _get_version(client, name, version)
    expected = mv.tags.get(EVALUATION_HASH_TAG)
    if not expected or not mv.run_id:
        raise SftopsError(
            f"model {name} version {mv.version} has no recorded evaluation (registered without "
            "one): evaluate it (flow evaluate_model) and register it again"
        )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(mv.run_id, EVALUATION_ARTIFACT, tmp)
            evaluation: dict[str, Any] = json.loads(Path(local).read_text(encoding="utf-8"))
    except Exception as exc:
        raise SftopsError(
            f"model {name} version {mv.version}: evaluation artifact {EVALUATION_ARTIFACT} of run "
            f"{mv.run_id} unreadable ({_one_line(exc)})"
        ) from None
    if evaluation_sha256(evaluation) != expected:
        raise SftopsError(
            f"model {name} version {mv.version}: evaluation artifact does not match the hash "
            "recorded at registration"
        )
    return evaluation


def find_version(name: str, model_sha256: str, *, root: Path | None = None) -> str | None:
    """The version of ``name`` registered with exactly these weights, if any."""
    from mlflow.exceptions import MlflowException

    client = _client(root)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for mv in versions:
        if mv.tags.get("model.sha256") == model_sha256:
            return str(mv.version)
    return None


def register_model(
    run_id: str,
    model_dir: Path,
    name: str,
    lineage: dict[str, Any],
    *,
    metrics: dict[str, Any] | None = None,
    allow_unknown_lineage: bool = False,
    root: Path | None = None,
) -> str:
    """Log ``model_dir`` into run ``run_id`` as a pyfunc model and register it under ``name``;
    returns the new version (a string) and points alias ``challenger`` at it.

    Refuses (``SftopsError``) a folder without safetensors or with pickled weights, and a
    lineage missing any of :data:`REQUIRED_LINEAGE` (git commit, train and test data md5) unless
    ``allow_unknown_lineage``; the model's own content hash (``model.sha256``) is always
    recorded. Version tags: the lineage, ``run_id``, ``metric.<name>`` for each candidate metric
    and ``metrics`` (JSON, with ``test_set``), read back by :func:`load_champion_metrics`.
    ``metrics`` is the evaluate report; without it the run's ``candidate.*`` metrics are used.
    """
    model_dir = Path(model_dir)
    missing = missing_lineage(lineage)
    if missing and not allow_unknown_lineage:
        raise SftopsError(
            f"refusing to register {name}: lineage unknown for {', '.join(missing)} (run the "
            "pipeline through DVC in a git checkout, or allow unknown lineage explicitly)"
        )
    check_model_folder(model_dir)
    client = _client(root)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise SftopsError(f"no MLflow run {run_id} ({_one_line(exc)})") from exc
    recorded = metrics is not None
    if metrics is None:
        metrics = {
            "models": {
                "candidate": {
                    k.removeprefix("candidate."): v
                    for k, v in run.data.metrics.items()
                    if k.startswith("candidate.") and k.count(".") == 1
                }
            }
        }
        if "test_set" in run.data.tags:
            metrics["test_set"] = run.data.tags["test_set"]
    summary = _candidate_summary(metrics)
    started = time.perf_counter()
    active = mlflow.active_run()
    nested = active is not None and active.info.run_id != run_id
    with (
        tempfile.TemporaryDirectory() as tmp,
        _fluent(tracking_uri(root)),
        mlflow.start_run(run_id=run_id, nested=nested),
    ):
        code = Path(tmp) / "sftops_chat_model.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(code),
            artifacts={HF_ARTIFACT_KEY: str(model_dir)},
            signature=_signature(),
            input_example=pd.DataFrame({"prompt": ["What is the capital of France?"]}),
            pip_requirements=_pip_requirements(),
        )
    tags: dict[str, Any] = {_key(k): _tag_value(v) for k, v in lineage.items()}
    tags["run_id"] = run_id
    tags["model.sha256"] = folder_sha256(model_dir)
    tags["lineage.complete"] = str(not missing).lower()
    tags["metrics"] = _tag_value(summary)
    if recorded:  # the report logged as the run's EVALUATION_ARTIFACT by log_pipeline_run
        tags[EVALUATION_HASH_TAG] = evaluation_sha256(metrics)
        reference = metrics.get("reference") or {}
        if reference.get("id"):
            tags["evaluation.reference"] = str(reference["id"])
    for key, value in summary.items():
        if key not in ("test_set", "test_rows"):
            tags[_key(f"metric.{key}")] = f"{float(value):.6g}"
    with _fluent(tracking_uri(root)):
        version = mlflow.register_model(info.model_uri, name, tags=tags)
    number = str(version.version)
    dirty = " (dirty tree)" if str(lineage.get("git.dirty")) == "true" else ""
    description = (
        f"[{_now()}] registered from run {run_id}: base model "
        f"{lineage.get('base_model', UNKNOWN)}, "
        f"git {lineage.get('git.commit', UNKNOWN)}{dirty}, train data md5 "
        f"{lineage.get('dvc.train_data_md5', UNKNOWN)}, test set {summary.get('test_set', UNKNOWN)}"
        + (f"; lineage incomplete: {', '.join(missing)}" if missing else "")
    )
    client.update_model_version(name, number, description=description)
    client.set_registered_model_alias(name, CHALLENGER, number)
    log.info("registered %s version %s in %.1fs", name, number, time.perf_counter() - started)
    return number


# --------------------------------------------------------------------------- champion and alias


def _get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise SftopsError(f"model {name} has no version {version}") from None


def champion_version(name: str, *, root: Path | None = None) -> ModelVersion | None:
    """The version alias ``champion`` points at, or ``None`` (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    client = _client(root)
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _stack(client: MlflowClient, name: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        raw = client.get_registered_model(name).tags.get(PREVIOUS_CHAMPION_TAG, "[]")
    except MlflowException:
        raise SftopsError(f"no registered model {name}") from None
    try:
        stack = json.loads(raw)
    except ValueError:
        stack = []
    return [str(v) for v in stack] if isinstance(stack, list) else []


def _append_description(client: MlflowClient, mv: ModelVersion, entry: str) -> None:
    """Append an entry; past :data:`MAX_DESCRIPTION` (the SQL column holds 5000 characters)
    the oldest entries after the first (the registration) are dropped, the tags keep the rest."""
    entries = [e for e in (mv.description or "").split("\n\n") if e] + [entry]
    while len("\n\n".join(entries)) > MAX_DESCRIPTION and len(entries) > 2:
        del entries[1]
    text = _truncate("\n\n".join(entries), MAX_DESCRIPTION)
    client.update_model_version(mv.name, mv.version, description=text)


def promote(
    name: str,
    version: str | int,
    decision: Decision,
    reason: str,
    approved_by: str | None = None,
    *,
    root: Path | None = None,
) -> bool:
    """Record ``decision`` on ``name`` version ``version`` and, if it promotes, move alias
    ``champion`` there; returns whether the alias moved to (or already was on) that version.

    Version tags ``promotion.decision`` (promoted / rejected), ``promotion.reasons`` (one rule
    per line), ``promotion.reason``, ``promotion.compared_to``, ``promotion.approved_by``,
    ``promotion.at``; the same is appended to the version description. The replaced champion
    is pushed on the model tag ``previous_champion`` (JSON list) and tagged ``superseded_by``.
    A version that does not exist: ``SftopsError("model X has no version N")``.
    """
    with alias_lock(root):
        return _promote(name, version, decision, reason, approved_by, root)


@contextmanager
def alias_lock(root: Path | None = None) -> Iterator[None]:
    """Alias moves are the one shared mutable thing of concurrent runs: one at a time (an flock
    in the project's `.sftops/`; with a shared server, runs on other machines are not covered)."""
    import fcntl

    folder = store_root(root) / ".sftops"
    folder.mkdir(exist_ok=True)
    with (folder / "registry.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _promote(
    name: str,
    version: str | int,
    decision: Decision,
    reason: str,
    approved_by: str | None,
    root: Path | None,
) -> bool:
    client = _client(root)
    mv = _get_version(client, name, version)
    at = _now()
    verdict = "promoted" if decision.promote else "rejected"
    tags = {
        "promotion.decision": verdict,
        "promotion.reasons": _tag_value("\n".join(decision.reasons)),
        "promotion.reason": _tag_value(reason),
        "promotion.compared_to": decision.compared_to or "-",
        "promotion.approved_by": approved_by or "-",
        "promotion.at": at,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, mv.version, key, value)
    who = f", approved by {approved_by}" if approved_by else ""
    rules = "".join(f"\n- {r}" for r in decision.reasons)
    line = f"[{at}] {verdict} as {CHAMPION}{who}: {reason}{rules}"
    _append_description(client, mv, line)
    if not decision.promote:
        return False
    current = champion_version(name, root=root)
    if current is not None and str(current.version) == str(mv.version):
        return True
    if current is not None:
        stack = [*_stack(client, name), str(current.version)]
        client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, json.dumps(stack))
        client.set_model_version_tag(name, current.version, "superseded_by", str(mv.version))
        client.set_model_version_tag(name, current.version, "superseded.at", at)
    client.set_registered_model_alias(name, CHAMPION, str(mv.version))
    log.info("%s: champion -> version %s (%s)", name, mv.version, reason)
    return True


def rollback(name: str, reason: str, *, root: Path | None = None) -> str:
    """Move alias ``champion`` back to the previous champion (popped from the model tag
    ``previous_champion``); returns that version. Both versions get ``rollback.*`` tags and a
    description line. No previous champion: ``SftopsError`` (one line)."""
    with alias_lock(root):
        return _rollback(name, reason, root)


def _rollback(name: str, reason: str, root: Path | None) -> str:
    client = _client(root)
    stack = _stack(client, name)
    if not stack:
        raise SftopsError(f"model {name} has no previous champion to roll back to")
    target = _get_version(client, name, stack[-1])
    current = champion_version(name, root=root)
    at = _now()
    client.set_registered_model_alias(name, CHAMPION, str(target.version))
    client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, json.dumps(stack[:-1]))
    from_version = str(current.version) if current is not None else "-"
    for key, value in {
        "rollback.restored_at": at,
        "rollback.reason": _tag_value(reason),
        "rollback.replaced": from_version,
    }.items():
        client.set_model_version_tag(name, target.version, key, value)
    _append_description(
        client, target, f"[{at}] restored as {CHAMPION} (rollback from {from_version}): {reason}"
    )
    if current is not None:
        for key, value in {
            "rollback.demoted_at": at,
            "rollback.reason": _tag_value(reason),
            "rollback.restored": str(target.version),
        }.items():
            client.set_model_version_tag(name, current.version, key, value)
        _append_description(
            client,
            current,
            f"[{at}] rolled back: {CHAMPION} moved to version {target.version}: {reason}",
        )
    log.info("%s: rollback, champion -> version %s (%s)", name, target.version, reason)
    return str(target.version)


def download_champion(name: str, dst: Path, *, root: Path | None = None) -> Path | None:
    """The champion's Hugging Face folder at ``dst`` (for evaluate's ``champion_model``), or
    ``None`` when there is no champion. A folder already holding the same version is reused."""
    mv = champion_version(name, root=root)
    if mv is None:
        return None
    dst = Path(dst)
    marker = dst / ".sftops-registry.json"
    stamp = {"name": name, "version": str(mv.version), "sha256": mv.tags.get("model.sha256")}
    try:
        if json.loads(marker.read_text(encoding="utf-8")) == stamp:
            return dst
    except (OSError, ValueError):
        pass
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.download-{uuid.uuid4().hex[:8]}"
    try:
        with _fluent(tracking_uri(root)):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(tmp)
            )
        # pyfunc copies an artifact folder under its own name: artifacts/<folder name>/
        found = sorted(p.parent for p in (Path(local) / "artifacts").glob("*/config.json"))
        if not found:
            raise SftopsError(f"champion of {name} (version {mv.version}) holds no model folder")
        folder = found[0]
        marker_tmp = folder / marker.name
        marker_tmp.write_text(json.dumps(stamp), encoding="utf-8")
        if dst.exists():
            shutil.rmtree(dst)
        folder.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def load_champion_metrics(name: str, *, root: Path | None = None) -> dict[str, Any] | None:
    """The champion's candidate metrics when it was registered (with ``test_set``), from the
    version tag ``metrics`` or else the run's ``candidate.*`` metrics; ``None`` without one."""
    mv = champion_version(name, root=root)
    if mv is None:
        return None
    raw = mv.tags.get("metrics")
    if raw:
        try:
            loaded = json.loads(raw)
            if isinstance(loaded, dict):
                return loaded
        except ValueError:
            pass
    if not mv.run_id:
        return None
    run = _client(root).get_run(mv.run_id)
    result: dict[str, Any] = {
        k.removeprefix("candidate."): v
        for k, v in run.data.metrics.items()
        if k.startswith("candidate.") and k.count(".") == 1
    }
    if "test_set" in run.data.tags:
        result["test_set"] = run.data.tags["test_set"]
    return result


# --------------------------------------------------------------------------- human approval


class Approval(BaseModel):
    """A reviewer's answer to a promotion request (the Prefect pause form)."""

    approved: bool = Field(False, description="Promote this version to champion.")
    reviewer: str = Field("", description="Who decided (name or e-mail).")
    comment: str = Field("", description="Why; recorded on the model version.")


def approval_request_text(name: str, version: str | int, decision: Decision) -> str:
    """Markdown shown to the reviewer: the version and the gate's reason lines."""
    lines = [
        f"### Promote {name} version {version} to `{CHAMPION}`?",
        "",
        f"Gate: **{'pass' if decision.promote else 'fail'}** (vs {decision.compared_to or '-'})",
        "",
        *(f"- {r}" for r in decision.reasons),
    ]
    return "\n".join(lines)


def request_approval(
    name: str, version: str | int, decision: Decision, timeout_s: int = 3600
) -> Approval:
    """Pause the current Prefect flow run until a reviewer answers in the UI; returns the answer.

    Must be called inside a flow run: it calls
    ``prefect.flow_runs.pause_flow_run(wait_for_input=<Approval form>, timeout=timeout_s)``
    with :func:`approval_request_text` as the form's description (Prefect is imported here,
    never at module level). A pause that times out raises Prefect's error; the caller records
    that as "not approved". Then: ``promote(name, version, decision, approval.comment,
    approved_by=approval.reviewer)`` when ``approval.approved``.
    """
    from prefect.flow_runs import pause_flow_run
    from prefect.input import RunInput

    form = RunInput.subclass_from_base_model_type(Approval).with_initial_data(
        description=approval_request_text(name, version, decision),
        approved=False,
        reviewer="",
        comment="",
    )
    answer = pause_flow_run(wait_for_input=form, timeout=timeout_s)
    return Approval.model_validate(answer.model_dump(include=set(Approval.model_fields)))


def run_lineage(run_id: str, *, root: Path | None = None) -> dict[str, str]:
    """The lineage tags (git commit, dvc.lock hashes, ...) a pipeline run was logged with."""
    from mlflow.exceptions import MlflowException

    client = _client(root)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise SftopsError(f"MLflow has no run {run_id!r}: {_one_line(err)}") from None
    return {k: v for k, v in run.data.tags.items() if k.startswith(("git.", "dvc.", "rows."))}


def resolve_version(name: str, version_or_alias: str, root: Path | None = None) -> str:
    """The version number that ``version_or_alias`` ("3", "v3" or an alias) names."""
    from mlflow.exceptions import MlflowException

    client = _client(root)
    ref = version_or_alias.strip()
    number = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
    try:
        if number.isdigit():
            return str(client.get_model_version(name, number).version)
        return str(client.get_model_version_by_alias(name, ref).version)
    except MlflowException:
        raise SftopsError(f"model {name} has no version or alias {ref!r}") from None


def download_version(name: str, version: str, dst: Path, root: Path | None = None) -> Path:
    """The Hugging Face folder of ``name`` version ``version`` at ``dst`` (reused when present)."""
    import mlflow

    dst = Path(dst)
    if (dst / "config.json").exists():
        return dst
    uri = tracking_uri(root)
    tmp = dst.parent / f".{dst.name}.download-{uuid.uuid4().hex[:8]}"
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=str(tmp),
            tracking_uri=uri,
            registry_uri=uri,
        )
        # pyfunc keeps the model folder under artifacts/<folder name>/
        found = sorted(p.parent for p in (Path(local) / "artifacts").glob("*/config.json"))
        if not found:
            raise SftopsError(f"{name} version {version} holds no model folder")
        try:
            found[0].rename(dst)
        except OSError:
            if not (dst / "config.json").exists():  # else a concurrent run put it there first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
