"""Folders written through ``atomic_path(directory=True)`` replace the old one in one step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sftops.io as sio
from sftops.io import atomic_path


def write_folder(target: Path, text: str) -> None:
    with atomic_path(target, directory=True) as tmp:
        (tmp / "weights.bin").write_text(text)


def test_a_folder_is_swapped_in_one_step_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "model"
    write_folder(target, "v1")
    before = os.stat(target).st_ino
    write_folder(target, "v2")
    assert (target / "weights.bin").read_text() == "v2"
    assert os.stat(target).st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .tmp, no .old


def test_the_swap_leaves_no_moment_without_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model"
    write_folder(target, "v1")
    seen: list[bool] = []
    real_rename = os.rename

    def watching_rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(target.exists())
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", watching_rename)
    write_folder(target, "v2")
    assert seen == []  # renameat2 swapped the folders: no rename moved the old one aside
    assert (target / "weights.bin").read_text() == "v2"


def test_without_the_exchange_the_old_folder_is_moved_aside_then_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sio, "_exchange", lambda first, second: False)
    target = tmp_path / "model"
    write_folder(target, "v1")
    write_folder(target, "v2")
    assert (target / "weights.bin").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_exchange_raises_the_system_error_on_a_missing_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError):
        sio._exchange(tmp_path / "a", tmp_path / "missing")
