"""What .ci/run relies on to fail rather than pass by skipping: without a browser the e2e test
skips on a developer machine and fails where SFTOPS_REQUIRE_BROWSER=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def e2e_without_browser(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "SFTOPS_REQUIRE_BROWSER")}
    environ.update(env, SFTOPS_CHROMIUM=str(tmp_path / "no-chromium"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", "tests/e2e", "-p", "no:cacheprovider",
         "-q", "-x", "--no-header", "-rsfE"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_missing_browser_skips_locally_and_fails_where_required(tmp_path: Path) -> None:
    local = e2e_without_browser(tmp_path)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "1 skipped" in local.stdout and "no-chromium missing" in local.stdout
    required = e2e_without_browser(tmp_path, SFTOPS_REQUIRE_BROWSER="1")
    assert required.returncode == 1, required.stdout + required.stderr
    assert "the browser test cannot run" in required.stdout
    assert "no-chromium missing" in required.stdout
