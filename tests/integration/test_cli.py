"""The CLI as a user meets it: one-line errors, non-zero exits only when a stage cannot go on."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def sftops(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sftops", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_help_lists_every_stage(workdir: Path, tool_env: dict[str, str]) -> None:
    out = sftops(["--help"], workdir, tool_env).stdout
    for command in ("ingest", "clean", "validate", "split", "run"):
        assert command in out


def test_bad_param_value_is_one_line_naming_the_key(
    workdir: Path, tool_env: dict[str, str]
) -> None:
    done = sftops(["clean", "--set", "clean.min_output_chars=-1"], workdir, tool_env)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: params.yaml: clean.min_output_chars: must be ≥ 0"


def test_unknown_param_key_in_the_file(workdir: Path, tool_env: dict[str, str]) -> None:
    params = workdir / "params.yaml"
    params.write_text(params.read_text().replace("min_output_chars:", "min_len:"))
    done = sftops(["ingest"], workdir, tool_env)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: params.yaml: clean.min_len: unknown key"


def test_missing_source_file_stops_ingest_with_one_line(
    workdir: Path, tool_env: dict[str, str]
) -> None:
    (workdir / "data" / "sample" / "reviews.csv").unlink()
    done = sftops(["ingest"], workdir, tool_env)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: data/sample/reviews.csv: file not found"
    assert "Traceback" not in done.stderr


def test_stage_before_its_input_exists_says_what_to_run(
    workdir: Path, tool_env: dict[str, str]
) -> None:
    done = sftops(["clean"], workdir, tool_env)
    assert done.returncode == 1
    assert (
        "data/interim/ingested.parquet: file not found (run the previous stage first)"
        in done.stderr
    )


def test_too_many_invalid_rows_fails_validate(workdir: Path, tool_env: dict[str, str]) -> None:
    for stage in ("ingest", "clean"):
        assert sftops([stage], workdir, tool_env).returncode == 0
    # Only English allowed at validation time: every Chinese row fails `lang_allowed`.
    done = sftops(["validate", "--set", "clean.languages=[en]"], workdir, tool_env)
    assert done.returncode == 1
    assert "above validate.max_invalid_fraction=0.05" in done.stderr
    assert "lang:lang_allowed" in done.stderr
    quarantined = (workdir / "data/quarantine/validate.jsonl").read_text().splitlines()
    assert quarantined and json.loads(quarantined[0])["reason"] == "lang:lang_allowed"


def test_run_without_prefect_writes_all_outputs(workdir: Path, tool_env: dict[str, str]) -> None:
    done = sftops(
        ["run", "--no-prefect", "--no-train", "--set", "augment.max_rows=10"], workdir, tool_env
    )
    assert done.returncode == 0, done.stderr
    assert "sftops data stages" in done.stdout
    for name in ("train", "validation", "test"):
        assert (workdir / "data" / "splits" / f"{name}.parquet").exists()
