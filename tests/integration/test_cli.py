"""The CLI as a user meets it: one-line errors, non-zero exits only when a stage cannot go on.

Every command of `sftops --help` is exercised here (`COVERED` maps each to its tests; a new
command fails `test_help_lists_every_command` until it gets one). The console entry point runs
as a subprocess where the exact stderr line matters; the other commands run in process
(`typer.testing.CliRunner`) so that the heavy imports they share are paid once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def sftops(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sftops", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def cli(workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run the Typer app in this process, in ``workdir``, against a temporary MLflow store;
    returns click's Result (exit_code, stdout, stderr)."""
    import logging

    from typer.testing import CliRunner

    from sftops.cli import app

    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    # the commands add a log handler and level to the `sftops` logger: not beyond this test
    logger = logging.getLogger("sftops")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)

    def invoke(*args: str) -> Any:
        result = CliRunner().invoke(app, list(args))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a bug, not an exit code
        return result

    return invoke


def one_error_line(result: Any) -> str:
    """The last stderr line, checked to be the only `error:` line and traceback-free."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], result.stderr
    return str(lines[-1])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "data" / "sample", tmp_path / "data" / "sample")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


# Each command of `sftops --help` -> the tests here (or elsewhere) that run it.
COVERED = {
    "ingest": "test_missing_source_file_stops_ingest_with_one_line, test_unknown_param_key_...",
    "clean": "test_bad_param_value_is_one_line_naming_the_key, test_stage_before_its_input_exists",
    "validate": "test_too_many_invalid_rows_fails_validate",
    "split": "test_split_writes_the_same_splits_as_the_stage_function",
    "augment": "test_stage_commands_before_their_input_exists",
    "train": "test_stage_commands_before_their_input_exists",
    "evaluate": "test_stage_commands_before_their_input_exists",
    "register": "test_register_without_a_trained_model_is_one_line",
    "promote": "test_promote_and_rollback_on_an_empty_registry",
    "rollback": "test_promote_and_rollback_on_an_empty_registry",
    "reproduce": "test_reproduce.py (restores a run's data; an unknown run is one line)",
    "ui": "test_ui_passes_its_options_to_the_stack (the stack itself: tests/e2e)",
    "serve": "test_serve_and_chat_with_an_unknown_model_are_one_line (HTTP: test_serving.py)",
    "chat": "test_serve_and_chat_with_an_unknown_model_are_one_line (REPL: test_serving.py)",
    "run": "test_run_without_prefect_writes_all_outputs (through Prefect: test_runs.py)",
    "ablate": "test_ablate_before_the_splits_exist_is_one_line (a real one: test_ablation.py)",
    "stack": "test_stack_status_without_a_stack_says_down (for real: tests/stack)",
}


def test_help_lists_every_command(workdir: Path, tool_env: dict[str, str]) -> None:
    import typer

    from sftops.cli import app

    done = sftops(["--help"], workdir, tool_env)
    assert done.returncode == 0, done.stderr
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert commands == set(COVERED), "a command without a CLI test (add it to COVERED)"
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("│ ")}
    assert commands <= listed, done.stdout
    assert sftops([], workdir, tool_env).returncode == 2  # no command: the help, as a usage error
    unknown = sftops(["trian"], workdir, tool_env)
    assert unknown.returncode == 2 and "No such command 'trian'" in unknown.stderr


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


def seed_outputs(workdir: Path, data_stages: tuple[Any, dict], *names: str) -> None:
    """Copy outputs of the session's data stages (tests/conftest.py) where params.yaml has them."""
    params, _ = data_stages
    root = Path(params.paths.ingested).parents[2]
    for name in names:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, workdir / name)


def test_too_many_invalid_rows_fails_validate(
    workdir: Path, tool_env: dict[str, str], data_stages: tuple[Any, dict]
) -> None:
    seed_outputs(workdir, data_stages, "data/interim/cleaned.parquet")
    # Only English allowed at validation time: every Chinese row fails `lang_allowed`.
    done = sftops(["validate", "--set", "clean.languages=[en]"], workdir, tool_env)
    assert done.returncode == 1
    assert "above validate.max_invalid_fraction=0.05" in done.stderr
    assert "lang:lang_allowed" in done.stderr
    quarantined = (workdir / "data/quarantine/validate.jsonl").read_text().splitlines()
    assert quarantined and json.loads(quarantined[0])["reason"] == "lang:lang_allowed"


def test_run_without_prefect_writes_all_outputs(workdir: Path, cli: Callable[..., Any]) -> None:
    import yaml

    from tests.helpers import TINY_SOURCE_WEIGHT

    # a quarter of the sample, no fluency model: the command is under test, not the stages
    params = yaml.safe_load((workdir / "params.yaml").read_text(encoding="utf-8"))
    for source in params["ingest"]["sources"]:
        source["weight"] = TINY_SOURCE_WEIGHT
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    done = cli(
        "run", "--no-prefect", "--no-train", "--set", "augment.max_rows=10",
        "--set", "augment.filter.fluency_model=null",
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert "sftops data stages" in done.stdout
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith("│ ")}
    assert {"ingest", "clean", "validate", "split", "augment"} <= set(rows)
    for name in ("train", "validation", "test", "train_aug"):
        assert (workdir / "data" / "splits" / f"{name}.parquet").exists()
    assert not (workdir / "models" / "sft").exists()  # --no-train


def test_split_writes_the_same_splits_as_the_stage_function(
    workdir: Path, cli: Callable[..., Any], data_stages: tuple[Any, dict]
) -> None:
    import pandas as pd

    params, summaries = data_stages
    seed_outputs(workdir, data_stages, "data/interim/validated.parquet")
    done = cli("split")
    assert done.exit_code == 0, done.stderr
    for name, rows in summaries["split"]["rows_by_split"].items():
        ours = pd.read_parquet(workdir / "data" / "splits" / f"{name}.parquet")
        assert len(ours) == rows
        pd.testing.assert_frame_equal(ours, pd.read_parquet(params.paths.split(name)))


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("augment", "data/splits/train.parquet"),
        ("train", "data/splits/train_aug.parquet"),
        ("evaluate", "data/splits/test.parquet"),
    ],
)
def test_stage_commands_before_their_input_exists(
    cli: Callable[..., Any], command: str, missing: str
) -> None:
    done = cli(command)
    assert done.exit_code == 1
    assert (
        one_error_line(done) == f"error: {missing}: file not found (run the previous stage first)"
    )


def test_register_without_a_trained_model_is_one_line(
    workdir: Path, cli: Callable[..., Any]
) -> None:
    done = cli("register")
    assert done.exit_code == 1
    line = one_error_line(done)
    assert (
        line
        == f"error: {workdir.resolve() / 'models' / 'sft'}: not a model folder (no config.json)"
    )


def test_promote_and_rollback_on_an_empty_registry(cli: Callable[..., Any]) -> None:
    missing_option = cli("promote")
    assert missing_option.exit_code == 2 and "Missing option '--version'" in missing_option.stderr
    done = cli("promote", "--version", "3")
    assert done.exit_code == 1
    assert one_error_line(done) == "error: model sftops-chat has no version 3"
    done = cli("rollback", "--reason", "bad answers")
    assert done.exit_code == 1
    assert one_error_line(done) == "error: no registered model sftops-chat"


@pytest.mark.parametrize("command", ["serve", "chat"])
def test_serve_and_chat_with_an_unknown_model_are_one_line(
    workdir: Path, cli: Callable[..., Any], command: str
) -> None:
    done = cli(command, "--model", str(workdir / "nope"))
    assert done.exit_code == 1
    assert one_error_line(done) == (
        f"error: unknown model '{workdir / 'nope'}': not a built-in name "
        "(smollm2-135m-instruct), not a local folder, and the hub is offline"
    )


def test_ui_passes_its_options_to_the_stack(
    workdir: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.errors import SftopsError
    from sftops.stack import ui

    calls: list[tuple[Path, dict[str, Any]]] = []

    def fake_foreground(root: Path, **kwargs: Any) -> None:
        calls.append((Path(root), kwargs))
        if kwargs["prefect_port"] == 1:
            raise SftopsError("the Prefect server on http://127.0.0.1:1 did not start")

    monkeypatch.setattr(ui, "run_foreground", fake_foreground)
    assert cli("ui").exit_code == 0
    assert cli("ui", "--prefect-port", "4300", "--mlflow-port", "0", "--cron", "").exit_code == 0
    local = {"host": "127.0.0.1"}
    assert calls == [
        (workdir, {"prefect_port": 4200, "mlflow_port": 5000, **local, "serve_args": None}),
        (
            workdir,
            {"prefect_port": 4300, "mlflow_port": None, **local, "serve_args": ["--cron", ""]},
        ),
    ]
    failed = cli("ui", "--prefect-port", "1")
    assert failed.exit_code == 1
    assert one_error_line(failed) == "error: the Prefect server on http://127.0.0.1:1 did not start"


def test_ablate_before_the_splits_exist_is_one_line(cli: Callable[..., Any]) -> None:
    done = cli("ablate", "augment", "--train-rows", "10", "--no-mlflow")
    assert done.exit_code == 1
    assert one_error_line(done) == (
        "error: data/splits/train.parquet: train split missing (run `sftops run` or "
        "`dvc repro split`)"
    )
    assert cli("ablate", "shuffle").exit_code == 2  # only `augment` is an ablation


def test_stack_status_without_a_stack_says_down(workdir: Path, cli: Callable[..., Any]) -> None:
    done = cli("stack", "status", "--state-dir", str(workdir / "st"))
    assert done.exit_code == 1  # a service is down
    status = dict(line.split() for line in done.stdout.strip().splitlines())
    assert status and set(status.values()) == {"down"}, done.stdout
