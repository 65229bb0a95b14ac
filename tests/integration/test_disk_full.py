"""Disk full while writing an output: a one-line error naming the file and "no space left", and
the previous version of the output intact (every writer goes through sftops.io.atomic_path).

The disk is real: a tmpfs of a few KiB mounted for the test (root only; skipped elsewhere)."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sftops.errors import OutputWriteError
from sftops.io import write_json, write_jsonl, write_table, write_text

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DISK_BYTES = 64 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


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
