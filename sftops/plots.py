"""PNG plots for reports (matplotlib, headless): one setup, one way to save."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sftops.io import atomic_path

DPI = 110


@contextmanager
def png_figure(target: str | Path, figsize: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """``(figure, axes)`` on the headless Agg backend; on leaving the block the figure is laid
    out, written atomically to ``target`` and closed (also when the block raises)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and workers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield fig, ax
        fig.tight_layout()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)


def loss_curve(history: list[dict[str, Any]], target: str | Path, title: str = "Training") -> None:
    """Train loss per step and validation loss at each evaluation."""
    train = [
        (h["step"], h["train_loss"])
        for h in history
        if isinstance(h.get("train_loss"), float) and h["train_loss"] == h["train_loss"]  # not NaN
    ]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    with png_figure(target, (7, 4)) as (_, ax):
        if train:
            ax.plot(*zip(*train, strict=True), label="train loss", alpha=0.7)
        if val:
            ax.plot(*zip(*val, strict=True), "o-", label="validation loss")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss per target token")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()


def interval_bars(
    intervals: dict[str, dict[str, dict[str, Any]]],
    metrics: list[str],
    target: str | Path,
    title: str,
    scale: dict[str, float] | None = None,
) -> None:
    """One group of bars per metric, one bar per model, with its confidence interval:
    ``intervals[model][metric] = {"mean": m, "ci": [low, high]}``; ``scale`` multiplies a
    metric's values (e.g. 100 to put fractions beside chrF)."""
    names = list(intervals)
    factor = [(scale or {}).get(m, 1.0) for m in metrics]
    width = 0.8 / max(1, len(names))
    x = np.arange(len(metrics))
    with png_figure(target, (8, 4)) as (_, ax):
        for k, name in enumerate(names):
            cells = [intervals[name][m] for m in metrics]
            means = [c["mean"] * f for c, f in zip(cells, factor, strict=True)]
            low = [(c["mean"] - c["ci"][0]) * f for c, f in zip(cells, factor, strict=True)]
            high = [(c["ci"][1] - c["mean"]) * f for c, f in zip(cells, factor, strict=True)]
            ax.bar(x + k * width, means, width, yerr=[low, high], capsize=3, label=name)
        ax.set_xticks(x + width * (len(names) - 1) / 2, metrics)
        ax.set_ylabel("score (0-100), 95% bootstrap CI")
        ax.set_title(title)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)


def confusion_matrix(
    matrix: list[list[int]], rows: list[str], columns: list[str], target: str | Path, title: str
) -> None:
    """Counts of gold (rows) against predicted (columns) labels."""
    cm = np.array(matrix)
    with png_figure(target, (1.2 * len(columns) + 2, 1.0 * len(rows) + 1.5)) as (_, ax):
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        for (i, j), value in np.ndenumerate(cm):
            ax.text(j, i, str(value), ha="center", va="center")
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(title)
