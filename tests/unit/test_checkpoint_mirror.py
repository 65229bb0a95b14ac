"""The checkpoint mirror on a local-folder remote: what a push leaves, what a pull restores,
what a damaged or vanished checkpoint does."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_objects.fs.local import LocalFileSystem

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.mlops.checkpoints import (
    CheckpointPusher,
    RemoteCheckpoints,
    mirror_remote,
)
from sftops.modeling.checkpoint import STATE_FILE


def checkpoint(folder: Path, step: int, content: bytes = b"weights") -> Path:
    path = folder / f"step-{step:06d}"
    (path / "tokenizer").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(content)
    (path / "tokenizer" / "vocab.json").write_text("{}")
    (path / STATE_FILE).write_bytes(b"state %d" % step)
    return path


def best(folder: Path, content: bytes) -> None:
    (folder / "best").mkdir(parents=True, exist_ok=True)
    (folder / "best" / "model.safetensors").write_bytes(content)


@pytest.fixture
def mirror(tmp_path: Path) -> RemoteCheckpoints:
    return RemoteCheckpoints(LocalFileSystem(), str(tmp_path / "remote"), "k" * 32, "test")


def test_a_push_then_a_pull_elsewhere_restores_the_checkpoint_and_the_best_weights(
    tmp_path: Path, mirror: RemoteCheckpoints
) -> None:
    here = tmp_path / "here"
    best(here, b"best at 2")
    mirror.push(checkpoint(here, 2))
    best(here, b"best at 4")
    mirror.push(checkpoint(here, 4, b"later weights"))
    remote = tmp_path / "remote" / "sftops-checkpoints" / ("k" * 32)
    assert sorted(p.name for p in remote.iterdir()) == ["latest.json", "step-000004"]
    assert not list(here.glob(".push-*"))  # the hard-linked snapshot is gone

    there = tmp_path / "there"
    there.mkdir()
    restored = mirror.pull(there)
    assert restored == there / "step-000004"
    assert (restored / "model.safetensors").read_bytes() == b"later weights"
    assert (restored / "tokenizer" / "vocab.json").read_text() == "{}"
    assert (there / "best" / "model.safetensors").read_bytes() == b"best at 4"
    assert sorted(p.name for p in there.iterdir()) == ["best", "step-000004"]

    mirror.clear()
    assert mirror.latest() is None and mirror.pull(there) is None


def test_a_file_that_differs_from_the_manifest_is_refused_and_nothing_is_left_named(
    tmp_path: Path, mirror: RemoteCheckpoints
) -> None:
    mirror.push(checkpoint(tmp_path / "here", 2))
    pushed = tmp_path / "remote" / "sftops-checkpoints" / ("k" * 32) / "step-000002"
    (pushed / "checkpoint" / "model.safetensors").write_bytes(b"weightz")  # same size
    there = tmp_path / "there"
    there.mkdir()
    with pytest.raises(SftopsError, match=r"model\.safetensors differs from its manifest"):
        mirror.pull(there)
    assert not (there / "step-000002").exists()


def test_the_pusher_sends_only_newer_complete_checkpoints_and_survives_a_failing_remote(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ck"
    checkpoint(folder, 2)
    (folder / "step-000004").mkdir()  # being written: no trainer state yet
    sent: list[str] = []
    pusher = CheckpointPusher(folder, lambda p: sent.append(p.name), pushed_step=2, interval=60)
    pusher.push_new()
    assert sent == []  # step 2 is on the remote already, step 4 is incomplete
    checkpoint(folder, 6)
    pusher.push_new()
    pusher.push_new()
    assert sent == ["step-000006"]

    def down(path: Path) -> None:
        raise ConnectionError("remote unreachable")

    failing = CheckpointPusher(folder, down, pushed_step=-1, interval=60)
    failing.push_new()
    assert failing.failures == 1 and failing.pushed == []

    def vanished(path: Path) -> None:
        raise FileNotFoundError(path)

    skipping = CheckpointPusher(folder, vanished, pushed_step=-1, interval=60)
    skipping.push_new()
    assert skipping.failures == 0 and skipping.pushed == []


def test_the_pusher_thread_pushes_the_last_checkpoint_on_exit(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    folder.mkdir()
    sent: list[str] = []
    with CheckpointPusher(folder, lambda p: sent.append(p.name), pushed_step=-1, interval=60):
        checkpoint(folder, 8)
    assert sent == ["step-000008"]


def test_the_remote_comes_from_params_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SFTOPS_CHECKPOINT_REMOTE", raising=False)
    assert mirror_remote(Params()) is None
    monkeypatch.setenv("SFTOPS_CHECKPOINT_REMOTE", "objectstore")
    assert mirror_remote(Params()) == "objectstore"
    params = Params.model_validate({"checkpoints": {"remote": "default"}})
    assert mirror_remote(params) == "default"


def test_the_manifest_lists_sizes_and_md5s(tmp_path: Path, mirror: RemoteCheckpoints) -> None:
    mirror.push(checkpoint(tmp_path / "here", 2, b"abc"))
    latest = mirror.latest()
    assert latest is not None and latest["step"] == "step-000002"
    assert latest["files"]["checkpoint/model.safetensors"] == {
        "size": 3,
        "md5": "900150983cd24fb0d6963f7d28e17f72",  # md5("abc")
    }


def test_a_mirror_outside_a_dvc_project_is_a_one_line_error(tmp_path: Path) -> None:
    from sftops.mlops.checkpoints import open_remote

    with pytest.raises(SftopsError, match=r"checkpoints\.remote 'default': ") as raised:
        open_remote(tmp_path, "default")
    assert "\n" not in str(raised.value)
