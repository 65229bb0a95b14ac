"""Evaluate a registered model version (or alias) as the candidate on the current test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from sftops.config import load_params


@flow(name="evaluate_model", log_prints=True)
def evaluate_model(
    version_or_alias: str = Field(
        "champion", description='Registered version ("3") or alias ("champion", "challenger").'
    ),
    params_file: str = "params.yaml",
) -> dict[str, Any]:
    """Evaluate a registered version on the checkout's test split (and the base model when
    `evaluate.compare_base` says so; runs never change the checkout's data). The reports go to
    `<reports_dir>/registry/<model>-v<version>/`, leaving the pipeline's own reports alone."""
    from sftops.evaluation.report import run_evaluate, summary_markdown
    from sftops.mlops import registry

    params = load_params(params_file)
    name = params.register_.model_name
    version = registry.resolve_version(name, version_or_alias)
    reports = Path(params.paths.reports_dir) / "registry" / f"{name}-v{version}"
    folder = registry.download_version(
        name, version, Path(params.paths.cache_dir) / "registry" / reports.name
    )
    print(f"evaluating {name} version {version} ({version_or_alias}) from {folder}")
    params = load_params(params_file, {"paths.reports_dir": str(reports)})
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
