"""Ablation flow: does augmentation earn its place? (``sftops ablate augment`` as a flow)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from sftops.config import load_params


@flow(name="ablate_augment", log_prints=True)
def ablate_augment(
    name: str = Field("default", description="Setting name (file name of the result)."),
    train_rows: int | None = Field(None, description="Train rows per arm before augmentation."),
    test_rows: int | None = Field(None, description="At most this many test rows."),
    test_unused_train: bool = Field(
        False, description="Also test on the train rows the setting does not train on."
    ),
    seeds: int = Field(1, ge=1, description="Train each arm under this many seeds."),
    tasks: list[str] = Field(default_factory=list, description="Only rows of these tasks."),
    languages: list[str] = Field(default_factory=list, description="Only these languages."),
    overrides: dict[str, Any] = Field(
        default_factory=dict, description='Param overrides, e.g. {"train.max_steps": 30}.'
    ),
    params_file: str = "params.yaml",
) -> dict[str, Any]:
    """Train with and without augmentation from the same seed and steps, evaluate both on the
    same test rows, log the paired-bootstrap differences to MLflow as one run."""
    from sftops.mlops.ablation import AblationSetting, run_ablation, table_markdown

    params = load_params(params_file, overrides)
    setting = AblationSetting(
        name=name,
        train_rows=train_rows,
        test_rows=test_rows,
        test_unused_train=test_unused_train,
        seeds=seeds,
        tasks=tuple(tasks),
        languages=tuple(languages),
    )
    summary = run_ablation(params, setting)  # reads the checkout's splits, writes reports
    create_markdown_artifact(
        f"# Augmentation ablation: {name}\n\n{table_markdown([summary])}",
        key="ablate-augment",
        description="with vs without augmentation, paired bootstrap",
    )
    return summary


if __name__ == "__main__":
    ablate_augment()
