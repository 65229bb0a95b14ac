"""Registered versions: registering a folder with its lineage and its own evaluation, finding
and resolving versions, reading a version's evaluation back, downloading a version's folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import mlflow

from sftops.errors import SftopsError
from sftops.mlops.registry.aliases import CHALLENGER, champion_version
from sftops.mlops.registry.lineage import missing_lineage
from sftops.mlops.registry.pyfunc import (
    HF_ARTIFACT_KEY,
    MODEL_ARTIFACT,
    MODEL_CODE,
    input_example,
    pip_requirements,
    signature,
)
from sftops.mlops.registry.runs import EVALUATION_ARTIFACT, logged_candidate
from sftops.mlops.registry.store import (
    fluent,
    get_version,
    mlflow_client,
    one_line,
    tracking_uri,
)
from sftops.mlops.registry.values import UNKNOWN, finite, key, now, tag_value

log = logging.getLogger(__name__)

PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
EVALUATION_HASH_TAG = "evaluation.sha256"
DOWNLOAD_MARKER = ".sftops-registry.json"  # in a downloaded folder: which version it holds


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


def _candidate_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    candidate = (metrics.get("models") or {}).get("candidate") or {}
    summary: dict[str, Any] = {
        k: v for k, v in candidate.items() if finite(v) is not None and not isinstance(v, bool)
    }
    for name in ("test_set", "test_rows"):
        if name in metrics:
            summary[name] = metrics[name]
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
    client = mlflow_client(root)
    mv = get_version(client, name, version)
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
            f"{mv.run_id} unreadable ({one_line(exc)})"
        ) from None
    if evaluation_sha256(evaluation) != expected:
        raise SftopsError(
            f"model {name} version {mv.version}: evaluation artifact does not match the hash "
            "recorded at registration"
        )
    return evaluation


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
    candidate, test_set = logged_candidate(mlflow_client(root).get_run(mv.run_id))
    result: dict[str, Any] = dict(candidate)
    if test_set is not None:
        result["test_set"] = test_set
    return result


def find_version(name: str, model_sha256: str, *, root: Path | None = None) -> str | None:
    """The version of ``name`` registered with exactly these weights, if any."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(root)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for mv in versions:
        if mv.tags.get("model.sha256") == model_sha256:
            return str(mv.version)
    return None


def resolve_version(name: str, version_or_alias: str, root: Path | None = None) -> str:
    """The version number that ``version_or_alias`` ("3", "v3" or an alias) names."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(root)
    ref = version_or_alias.strip()
    number = ref[1:] if ref[:1] in ("v", "V") and ref[1:].isdigit() else ref
    try:
        if number.isdigit():
            return str(client.get_model_version(name, number).version)
        return str(client.get_model_version_by_alias(name, ref).version)
    except MlflowException:
        raise SftopsError(f"model {name} has no version or alias {ref!r}") from None


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
    lineage missing any of ``lineage.REQUIRED_LINEAGE`` (git commit, train and test data md5) unless
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
    client = mlflow_client(root)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise SftopsError(f"no MLflow run {run_id} ({one_line(exc)})") from exc
    recorded = metrics is not None
    if metrics is None:
        candidate, test_set = logged_candidate(run)
        metrics = {"models": {"candidate": candidate}}
        if test_set is not None:
            metrics["test_set"] = test_set
    summary = _candidate_summary(metrics)
    started = time.perf_counter()
    active = mlflow.active_run()
    nested = active is not None and active.info.run_id != run_id
    with (
        tempfile.TemporaryDirectory() as tmp,
        fluent(tracking_uri(root)),
        mlflow.start_run(run_id=run_id, nested=nested),
    ):
        code = Path(tmp) / "sftops_chat_model.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(code),
            artifacts={HF_ARTIFACT_KEY: str(model_dir)},
            signature=signature(),
            input_example=input_example(),
            pip_requirements=pip_requirements(),
        )
    tags: dict[str, Any] = {key(k): tag_value(v) for k, v in lineage.items()}
    tags["run_id"] = run_id
    tags["model.sha256"] = folder_sha256(model_dir)
    tags["lineage.complete"] = str(not missing).lower()
    tags["metrics"] = tag_value(summary)
    if recorded:  # the report logged as the run's EVALUATION_ARTIFACT by log_pipeline_run
        tags[EVALUATION_HASH_TAG] = evaluation_sha256(metrics)
        reference = metrics.get("reference") or {}
        if reference.get("id"):
            tags["evaluation.reference"] = str(reference["id"])
    for metric, value in summary.items():
        if metric not in ("test_set", "test_rows"):
            tags[key(f"metric.{metric}")] = f"{float(value):.6g}"
    with fluent(tracking_uri(root)):
        version = mlflow.register_model(info.model_uri, name, tags=tags)
    number = str(version.version)
    dirty = " (dirty tree)" if str(lineage.get("git.dirty")) == "true" else ""
    description = (
        f"[{now()}] registered from run {run_id}: base model "
        f"{lineage.get('base_model', UNKNOWN)}, "
        f"git {lineage.get('git.commit', UNKNOWN)}{dirty}, train data md5 "
        f"{lineage.get('dvc.train_data_md5', UNKNOWN)}, test set {summary.get('test_set', UNKNOWN)}"
        + (f"; lineage incomplete: {', '.join(missing)}" if missing else "")
    )
    client.update_model_version(name, number, description=description)
    client.set_registered_model_alias(name, CHALLENGER, number)
    log.info("registered %s version %s in %.1fs", name, number, time.perf_counter() - started)
    return number


def _stamp(folder: Path) -> Any:
    try:
        return json.loads((folder / DOWNLOAD_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def download_version(name: str, version: str | int, dst: Path, *, root: Path | None = None) -> Path:
    """The Hugging Face folder of ``name`` version ``version`` at ``dst``.

    A folder there that holds this version (its :data:`DOWNLOAD_MARKER` names the model, the
    version and its ``model.sha256``) is reused; anything else at ``dst`` is replaced. The
    download lands in a temporary sibling and is renamed into place, so runs downloading the
    same version at once do no harm: the first rename wins, the others are dropped.
    """
    client = mlflow_client(root)
    mv = get_version(client, name, version)
    stamp = {"name": name, "version": str(mv.version), "sha256": mv.tags.get("model.sha256")}
    dst = Path(dst)
    if _stamp(dst) == stamp:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.download-{uuid.uuid4().hex[:8]}"
    uri = tracking_uri(root)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}",
            dst_path=str(tmp),
            tracking_uri=uri,
            registry_uri=uri,
        )
        # pyfunc keeps the model folder under artifacts/<folder name>/
        found = sorted(p.parent for p in (Path(local) / "artifacts").glob("*/config.json"))
        if not found:
            raise SftopsError(f"model {name} version {mv.version} holds no model folder")
        (found[0] / DOWNLOAD_MARKER).write_text(json.dumps(stamp), encoding="utf-8")
        if dst.exists() and _stamp(dst) != stamp:  # another version, or an unmarked folder
            with contextlib.suppress(FileNotFoundError):  # another run moved it first
                dst.rename(tmp / "replaced")  # removed with tmp below
        try:
            found[0].rename(dst)
        except OSError:
            if _stamp(dst) != stamp:  # else a concurrent run put this version there first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def download_champion(name: str, dst: Path, *, root: Path | None = None) -> Path | None:
    """The champion's folder at ``dst`` (:func:`download_version`), or ``None`` when there is
    no champion."""
    mv = champion_version(name, root=root)
    if mv is None:
        return None
    return download_version(name, str(mv.version), dst, root=root)
