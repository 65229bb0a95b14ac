"""Evaluate a registered model version (or alias) as the candidate on the current test split."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from sftops.config import load_params
from sftops.errors import SftopsError
from sftops.pipeline import workspace_lock


def resolve_version(name: str, version_or_alias: str, root: Path | None = None) -> str:
    """The version number that ``version_or_alias`` ("3", "v3" or an alias) names."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from sftops import registry

    uri = registry.tracking_uri(root)
    registry.check_reachable(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
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

    from sftops import registry

    dst = Path(dst)
    if (dst / "config.json").exists():
        return dst
    uri = registry.tracking_uri(root)
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
        if dst.exists():
            shutil.rmtree(dst)
        found[0].rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


@flow(name="evaluate_model", log_prints=True)
def evaluate_model(
    version_or_alias: str = Field(
        "champion", description='Registered version ("3") or alias ("champion", "challenger").'
    ),
    params_file: str = "params.yaml",
) -> dict[str, Any]:
    """Evaluate a registered version on the current test split (base model, and champion when
    `evaluate.compare_base` / `promote.compare_champion` say so). The reports go to
    `<reports_dir>/registry/<model>-v<version>/`, leaving the pipeline's own reports alone."""
    from sftops.evaluation.report import run_evaluate, summary_markdown

    params = load_params(params_file)
    name = params.register_.model_name
    version = resolve_version(name, version_or_alias)
    reports = Path(params.paths.reports_dir) / "registry" / f"{name}-v{version}"
    folder = download_version(
        name, version, Path(params.paths.cache_dir) / "registry" / reports.name
    )
    print(f"evaluating {name} version {version} ({version_or_alias}) from {folder}")
    params = load_params(params_file, {"paths.reports_dir": str(reports)})
    with workspace_lock():  # the test split must not change under the evaluation
        metrics = run_evaluate(params, candidate=folder)
    create_markdown_artifact(
        f"# {name} version {version} ({version_or_alias})\n\n{summary_markdown(metrics)}",
        key="evaluate-model",
        description=f"{name} v{version} on the current test split",
    )
    print(f"reports written to {reports}")
    return {"model_name": name, "version": version, "reports_dir": str(reports), **metrics}


if __name__ == "__main__":
    evaluate_model()
