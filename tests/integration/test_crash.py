"""A run killed with SIGKILL at a random point (the orchestrator and every stage process, as a
power cut would) leaves nothing that a rerun mistakes for a finished output: the rerun completes,
restores the stages that had finished from the DVC cache and gives the same bytes as a run that
was never interrupted."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import tiny_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]
OUTPUTS = (
    "data/interim/ingested.parquet",
    "data/interim/cleaned.parquet",
    "data/interim/validated.parquet",
    "data/splits/train.parquet",
    "data/splits/test.parquet",
    "data/splits/train_aug.parquet",
)


def env_for(repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
    }


def data_run(repo: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["sftops", "run", "--no-prefect", "--no-train"],
        cwd=repo,
        env=env_for(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the run and every descendant (stage groups included), all at once."""
    parent = psutil.Process(proc.pid)
    family = [parent, *parent.children(recursive=True)]
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=10)
    proc.communicate(timeout=30)


def experiment_outputs(repo: Path) -> dict[str, str]:
    """{output: md5} of the newest DVC experiment's dvc.lock (same md5, same bytes), each
    object present in the shared cache."""
    import yaml

    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    revs = [
        (rev["revs"][0]["data"]["timestamp"], rev["revs"][0]["rev"])
        for base in json.loads(shown)
        for rev in base.get("experiments") or []
    ]
    newest = max(revs)[1]
    lock = yaml.safe_load(
        subprocess.run(
            ["git", "show", f"{newest}:dvc.lock"], cwd=repo, capture_output=True, check=True
        ).stdout
    )
    md5s = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}
    for name in OUTPUTS:
        digest = md5s[name]
        assert (repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).is_file()
    return {name: md5s[name] for name in OUTPUTS}


def test_a_run_killed_at_a_random_point_reruns_to_the_same_outputs(tmp_path: Path) -> None:
    reference_repo = tiny_repo(tmp_path / "reference")
    started = time.monotonic()
    done = data_run(reference_repo)
    assert done.wait(timeout=1200) == 0, done.communicate()[0][-3000:]
    full = time.monotonic() - started
    reference = experiment_outputs(reference_repo)

    repo = tiny_repo(tmp_path / "crashed")
    delay = random.Random(os.getpid()).uniform(0.2, 0.9) * full
    victim = data_run(repo)
    time.sleep(delay)
    if victim.poll() is None:
        kill_tree(victim)
    print(f"killed after {delay:.0f}s of a {full:.0f}s run")

    rerun = data_run(repo)
    out, _ = rerun.communicate(timeout=1200)
    assert rerun.returncode == 0, out[-3000:]
    assert experiment_outputs(repo) == reference


def test_registry_down_fails_the_run_in_one_line_and_the_rerun_registers_without_training(
    tmp_path: Path,
) -> None:
    import socket

    repo = tiny_repo(tmp_path)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        **env_for(repo),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "sftops",
    }
    down = subprocess.run(
        ["sftops", "run"],
        cwd=repo,
        env={**env, "MLFLOW_TRACKING_URI": dead},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert down.returncode == 1
    errors = [line for line in down.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, down.stderr[-3000:]  # one line (Prefect logs its own shutdown after)
    assert errors[0].startswith(f"error: MLflow tracking server {dead} unreachable"), errors

    env.pop("MLFLOW_TRACKING_URI", None)
    back = subprocess.run(
        ["sftops", "run"], cwd=repo, env=env, capture_output=True, text=True, timeout=1200
    )
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    logs = back.stdout + back.stderr
    assert "Stage 'train' is cached - skipping run" in logs  # from the cache, not retrained
    assert "model sftops-chat version 1" in logs
