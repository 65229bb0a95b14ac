from __future__ import annotations

from pathlib import Path

import pytest

from sftops.plots import confusion_matrix, interval_bars, loss_curve, png_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_each_plot_writes_a_png(tmp_path: Path) -> None:
    loss_curve([{"step": 1, "train_loss": 2.0}, {"step": 2, "val_loss": 1.5}], tmp_path / "l.png")
    interval = {"mean": 0.5, "ci": [0.4, 0.6]}
    interval_bars({"base": {"f1": interval}}, ["f1"], tmp_path / "b.png", "t", {"f1": 100.0})
    confusion_matrix([[2, 1], [0, 3]], ["a", "b"], ["a", "b"], tmp_path / "c.png", "t")
    for name in ("l.png", "b.png", "c.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)


def test_a_failing_plot_leaves_no_file_and_no_open_figure(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    with pytest.raises(ValueError), png_figure(tmp_path / "x.png", (3, 3)) as (_, ax):
        ax.plot([1, 2], [3, 4])
        raise ValueError("bad data")
    assert not (tmp_path / "x.png").exists()
    assert plt.get_fignums() == []
