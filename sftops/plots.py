"""PNG plots for reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftops.io import atomic_path


def loss_curve(history: list[dict[str, Any]], target: str | Path, title: str = "Training") -> None:
    """Train loss per step and validation loss at each evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [
        (h["step"], h["train_loss"])
        for h in history
        if isinstance(h.get("train_loss"), float) and h["train_loss"] == h["train_loss"]  # not NaN
    ]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", alpha=0.7)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per target token")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
