"""Disk full while writing an output: a one-line error naming the file and "no space left", and
the previous version of the output intact (every writer goes through sftops.io.atomic_path, the
model folders training writes included).

The disk is real: a tmpfs of a few KiB mounted for the test (root only; skipped elsewhere); the
model-folder tests also run anywhere with the weights writer made to fail."""

from __future__ import annotations

import errno
import os
import random
import shutil
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sftops.errors import OutputWriteError
from sftops.io import write_json, write_jsonl, write_table, write_text

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DISK_BYTES = 64 * 1024


@contextmanager
def mounted_disk(disk: Path, size: int) -> Iterator[Path]:
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)]).returncode != 0:  # a failed test's open file
            subprocess.run(["umount", "--lazy", str(disk)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_disk(tmp_path / "disk", DISK_BYTES) as disk:
        yield disk


def noise(chars: int, seed: int = 0) -> str:
    """Text that does not compress (parquet would shrink repetitive text below the disk)."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=chars))


def big_table() -> pd.DataFrame:
    return pd.DataFrame({"text": [noise(1000, seed) for seed in range(200)]})


WRITERS: dict[str, tuple[Callable[[Any, Path], Any], Any, Any]] = {
    "parquet": (write_table, pd.DataFrame({"text": ["previous"]}), big_table()),
    "jsonl": (write_jsonl, [{"text": "previous"}], [{"text": noise(1000, i)} for i in range(200)]),
    "json": (write_json, {"text": "previous"}, {"text": noise(200_000)}),
    "text": (write_text, "previous\n", noise(200_000)),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_disk_full_names_the_file_and_keeps_the_previous_version(
    small_disk: Path, kind: str
) -> None:
    write, previous, too_big = WRITERS[kind]
    target = small_disk / "out" / f"output.{kind}"
    write(previous, target)
    before = target.read_bytes()

    with pytest.raises(OutputWriteError) as raised:
        write(too_big, target)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{target}: no space left on device"), message
    assert "previous version is kept" in message
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temp left
    write(previous, target)  # the space of the failed attempt was given back


def test_a_stage_on_a_full_disk_fails_in_one_line_and_keeps_its_previous_output(
    small_disk: Path, tmp_path: Path
) -> None:
    target = small_disk / "ingested.parquet"
    target.write_bytes(b"previous output")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [
            "sftops",
            "ingest",
            "--set",
            f"paths.ingested={target}",
            "--set",
            f"paths.reports_dir={tmp_path / 'reports'}",
            "--set",
            f"paths.quarantine_dir={tmp_path / 'quarantine'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {target}: no space left on device (disk full) while writing it; "
        "its previous version is kept"
    ], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert target.read_bytes() == b"previous output"
    assert [p.name for p in small_disk.iterdir()] == ["ingested.parquet"]


# --------------------------------------------------------------------------- model folders


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from sftops.modeling.models import load_causal_lm, load_tokenizer
    from tests.assets.tiny_models import tiny_llama

    folder = tiny_llama(tmp_path_factory.mktemp("disk-full-model"))
    return load_causal_lm(folder), load_tokenizer(folder)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def assert_kept(raised: pytest.ExceptionInfo[OutputWriteError], target: Path, before: Any) -> None:
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        f"{target}: no space left on device (disk full) while writing it; "
        "its previous version is kept"
    )
    assert folder_bytes(target) == before
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temp left


def fill_the_disk_after(written: int, error: Callable[[], Exception]) -> Callable[..., None]:
    """A stand-in for safetensors' save_file that writes ``written`` bytes, then fails."""

    def save_file(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"\0" * written)
        raise error()

    return save_file


ENOSPC_ERRORS: dict[str, Callable[[], Exception]] = {
    "oserror": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    # what safetensors raises on a full disk (seen on a 64 KiB tmpfs)
    "safetensors": lambda: __import__("safetensors").SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    ),
}


@pytest.mark.parametrize("kind", sorted(ENOSPC_ERRORS))
def test_a_model_save_on_a_full_disk_keeps_the_previous_folder(
    tmp_path: Path, tiny_model: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from sftops.modeling.checkpoint import save_model

    model, tokenizer = tiny_model
    target = tmp_path / "models" / "sft"
    save_model(model, tokenizer, target, {"json": {"train_metrics.json": {"loss": 1.0}}})
    before = folder_bytes(target)
    assert {"model.safetensors", "tokenizer.json", "train_metrics.json"} <= set(before)

    failing = fill_the_disk_after(4096, ENOSPC_ERRORS[kind])
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", failing)
    with pytest.raises(OutputWriteError) as raised:
        save_model(model, tokenizer, target, {"json": {"train_metrics.json": {"loss": 0.5}}})
    assert_kept(raised, target, before)


def test_a_first_model_save_on_a_full_disk_leaves_no_folder(
    tmp_path: Path, tiny_model: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.modeling.checkpoint import latest_checkpoint, save_model

    model, tokenizer = tiny_model
    failing = fill_the_disk_after(4096, ENOSPC_ERRORS["oserror"])
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", failing)
    target = tmp_path / "checkpoints" / "step-000004"
    with pytest.raises(OutputWriteError, match=r"nothing was written$"):
        save_model(model, tokenizer, target, {})
    assert list(target.parent.iterdir()) == []
    assert latest_checkpoint(target.parent) is None


def test_the_train_command_reports_a_full_disk_in_one_line(
    tmp_path: Path,
    tiny_model: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    repo_root: Path,
) -> None:
    from typer.testing import CliRunner

    from sftops.cli import app
    from sftops.modeling.checkpoint import save_model

    model, tokenizer = tiny_model
    target = tmp_path / "models" / "sft"

    def run_train(params: Any, resume: bool = False) -> dict[str, Any]:  # train's last write
        save_model(model, tokenizer, target, {})
        return {}

    monkeypatch.setattr("sftops.modeling.train.run_train", run_train)
    monkeypatch.setattr(
        "transformers.modeling_utils.safe_save_file",
        fill_the_disk_after(4096, ENOSPC_ERRORS["safetensors"]),
    )
    monkeypatch.chdir(repo_root)
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {target}: no space left on device (disk full) while writing it; "
        "nothing was written"
    ], result.output
    assert "Traceback" not in result.output
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


@pytest.mark.parametrize("full_in", ["weights", "trainer_state"])
def test_a_checkpoint_on_a_real_full_disk_keeps_the_previous_one(
    tmp_path: Path, tiny_model: tuple[Any, Any], full_in: str
) -> None:
    """The real writers on a real full disk: safetensors (its own error type) for the weights,
    torch.save (a RuntimeError over the OSError) for the trainer state."""
    import torch

    from sftops.modeling.checkpoint import STATE_FILE, save_model

    model, tokenizer = tiny_model
    # the tiny model's folder takes 156 KiB of tmpfs pages; its weights file 124 KiB
    size, state_bytes = {"weights": (256, 0), "trainer_state": (512, 400)}[full_in]
    with mounted_disk(tmp_path / "disk", size * 1024) as disk:
        target = disk / "step-000002"
        save_model(model, tokenizer, target, {})
        before, used = folder_bytes(target), shutil.disk_usage(disk).used
        state = {"optimizer": torch.zeros(state_bytes * 256)}  # 4 bytes a float
        with pytest.raises(OutputWriteError) as raised:
            save_model(model, tokenizer, target, {"torch": {STATE_FILE: state}})
        assert_kept(raised, target, before)
        cause = raised.value.__cause__
        expected = "SafetensorError" if full_in == "weights" else "RuntimeError"
        assert type(cause).__name__ == expected, repr(cause)
        assert shutil.disk_usage(disk).used == used  # the failed attempt's space is given back
