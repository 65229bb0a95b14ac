"""Where a model came from: git commit, the ``dvc.lock`` hashes of its data and folder, the
base model and row counts, as tags on its run and its registered version."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from sftops.errors import SftopsError
from sftops.mlops.registry.store import mlflow_client, one_line
from sftops.mlops.registry.values import UNKNOWN

REQUIRED_LINEAGE = ("git.commit", "dvc.train_data_md5", "dvc.test_data_md5")


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
    """The :data:`REQUIRED_LINEAGE` keys that are absent, empty or ``"unknown"``.

    >>> missing_lineage({"git.commit": "abc", "dvc.train_data_md5": "unknown"})
    ['dvc.train_data_md5', 'dvc.test_data_md5']
    """
    return [
        key
        for key in REQUIRED_LINEAGE
        if str(lineage.get(key) or UNKNOWN).strip().lower() in ("", UNKNOWN)
    ]


def run_lineage(run_id: str, *, root: Path | None = None) -> dict[str, str]:
    """The lineage tags (git commit, dvc.lock hashes, ...) a pipeline run was logged with."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(root)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise SftopsError(f"MLflow has no run {run_id!r}: {one_line(err)}") from None
    return {k: v for k, v in run.data.tags.items() if k.startswith(("git.", "dvc.", "rows."))}
