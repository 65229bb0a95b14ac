"""Fixtures of the browser tests: a git + DVC copy of the project with tiny settings, the stack
(`sftops.stack.ui.start_stack`) on free ports, headless Chromium through Playwright."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CHROMIUM, missing_browser, tiny_repo

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots: ``$E2E_ARTIFACTS`` when set (CI uploads it), else a temporary folder."""
    env = os.environ.get("E2E_ARTIFACTS")
    folder = Path(env) if env else tmp_path_factory.mktemp("e2e") / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A committed git + DVC copy of the project whose params.yaml trains a tiny Llama."""
    base = tmp_path_factory.mktemp("e2e-project")
    repo = tiny_repo(base)
    return {
        "repo": repo,
        "base_model": base / "models",
        "tracking_uri": f"sqlite:///{(base / 'mlflow' / 'mlflow.db').as_posix()}",
    }


@pytest.fixture(scope="module")
def stack(tiny_project: dict[str, Any]) -> Iterator[Any]:
    """Prefect server + serve + MLflow for the copy, on free ports; stopped at teardown."""
    from sftops.stack.ui import start_stack

    (Path(tiny_project["tracking_uri"].removeprefix("sqlite:///")).parent).mkdir(exist_ok=True)
    env = {
        "MLFLOW_TRACKING_URI": tiny_project["tracking_uri"],
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",  # serve picks up UI-triggered runs sooner
        "PYTHONPATH": str(tiny_project["repo"]),
    }
    running = start_stack(
        tiny_project["repo"],
        prefect_port=free_port(),
        mlflow_port=free_port(),
        serve_args=["--no-schedule"],
        env=env,
        timeout=180,
        echo=lambda text: print(text, file=sys.stderr),
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = missing_browser()
    if problem:
        pytest.fail(f"the browser test cannot run: {problem}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
