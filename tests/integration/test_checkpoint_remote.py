"""Checkpoints travel: a train stage killed on one machine resumes on another that shares
nothing with it but the DVC remote, and ends with the model an uninterrupted run trains."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sftops.mlops.versioning import stage_env
from tests.helpers import GIT, tiny_repo

pytestmark = pytest.mark.integration

STEPS = 40
DIE_AT = 10


def dvc(repo: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=stage_env(repo),
        check=True,
        capture_output=True,
    )


def machine(project: Path, splits: Path, remote: Path, where: Path) -> Path:
    """A clone of the project (what a worker's pull step makes) with the train stage's input
    data in place (what its data stages, deterministic, produce) and the given DVC remote."""
    subprocess.run([*GIT, "clone", "-q", str(project), str(where)], check=True)
    shutil.copytree(splits, where / "data" / "splits", dirs_exist_ok=True)
    dvc(where, "remote", "add", "--local", "-d", "-f", "shared", str(remote))
    return where


# `sftops train`, or, with ``dies_at``, the same CLI in a process that kills itself (SIGKILL)
# once the checkpoint of that step is on the remote.
DYING_TRAIN = """
import json, os, signal, sys, time
from pathlib import Path
import sftops.modeling.train as train_module
real_save, step, remote = train_module.save_model, sys.argv[1], Path(sys.argv[2])
def pushed():
    return [json.loads(p.read_text())["step"] for p in remote.glob("*/*/latest.json")]
def save_then_die(model, tokenizer, target, extra):
    real_save(model, tokenizer, target, extra)
    if Path(target).name == step:
        deadline = time.monotonic() + 300
        while step not in pushed() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
train_module.save_model = save_then_die
from sftops.cli import app
sys.argv = ["sftops", "train"]
app()
"""


def train(
    repo: Path, dies_at: int | None = None, remote: Path | None = None
) -> subprocess.Popen[str]:
    env = {**stage_env(repo), "SFTOPS_CHECKPOINT_REMOTE": "default"}
    command = [str(Path(sys.executable).parent / "sftops"), "train"]
    if dies_at is not None:
        command = [sys.executable, "-c", DYING_TRAIN, f"step-{dies_at:06d}", str(remote)]
    return subprocess.Popen(
        command,
        cwd=repo,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def pushed(remote: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in remote.glob("sftops-checkpoints/*/latest.json")]


def weights(repo: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(repo / "models" / "sft" / "model.safetensors")


@pytest.mark.slow  # 40-130 s: the data stages once, three tiny trainings
def test_a_train_stage_killed_on_one_machine_resumes_on_another_from_the_remote(
    tmp_path: Path,
) -> None:
    import torch

    project = tiny_repo(
        tmp_path / "base",
        **{"train.max_steps": STEPS, "train.save_every": 2, "train.eval_every": 4},
    )
    dvc(project, "repro", "split")  # the train stage's inputs (augment is off: the split's)
    splits = project / "data" / "splits"
    shutil.copy(splits / "train.parquet", splits / "train_aug.parquet")
    remote = tmp_path / "remote"
    first = machine(project, splits, remote, tmp_path / "first")
    second = machine(project, splits, remote, tmp_path / "second")
    alone = machine(project, splits, tmp_path / "own-remote", tmp_path / "alone")

    # machine 1 dies (SIGKILL, no cleanup) right after its step-DIE_AT checkpoint reached the
    # remote: a deterministic point, however fast the machine trains
    dying = train(first, dies_at=DIE_AT, remote=remote)
    out, _ = dying.communicate(timeout=600)
    assert dying.returncode == -signal.SIGKILL, f"training was not killed:\n{out}"
    (manifest,) = pushed(remote)
    died_at = int(manifest["step"].split("-")[1])
    assert died_at == DIE_AT
    assert {"checkpoint/trainer_state.pt", "checkpoint/model.safetensors"} <= set(manifest["files"])

    # machine 2 shares only the remote: it resumes there and completes
    resumed = train(second)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log
    assert f"resuming from step-{died_at:06d} pulled from default" in log, log
    assert f"(step {died_at})" in log, log
    report = json.loads((second / "reports" / "train_report.json").read_text())
    assert report["steps"] == STEPS
    assert not pushed(remote)  # the completed stage's checkpoints are removed

    # the same stage run without interruption elsewhere trains the same model
    uninterrupted = train(alone)
    log_alone, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, log_alone
    assert "pulled from" not in log_alone and "resuming" not in log_alone
    expected = json.loads((alone / "reports" / "train_report.json").read_text())
    assert [h["step"] for h in report["history"]] == [h["step"] for h in expected["history"]]
    for got, want in zip(report["history"], expected["history"], strict=True):
        for name in ("train_loss", "val_loss"):
            if name in want and want[name] == want[name]:  # NaN: the step-0 train loss
                assert got[name] == pytest.approx(want[name], rel=1e-5), (got, want)
    ours, theirs = weights(second), weights(alone)
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_an_unreachable_remote_is_one_line_and_training_does_not_start(tmp_path: Path) -> None:
    project = tiny_repo(tmp_path / "base", **{"checkpoints.remote": "nowhere"})
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "sftops"), "train"],
        cwd=project,
        env=stage_env(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode != 0
    assert "checkpoints.remote 'nowhere'" in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr


def test_the_mirror_pushes_and_pulls_through_an_s3_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The team stack's remote kind: DVC's S3 filesystem against a moto server."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    from sftops.mlops.checkpoints import RemoteCheckpoints, open_remote
    from sftops.modeling.checkpoint import STATE_FILE

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="ckpt")
        project = tmp_path / "project"
        project.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        dvc(project, "init", "-q")
        dvc(project, "remote", "add", "store", "s3://ckpt/dvc")
        dvc(project, "remote", "modify", "--local", "store", "endpointurl", endpoint)

        here = tmp_path / "here" / "step-000004"
        here.mkdir(parents=True)
        (here / "model.safetensors").write_bytes(os.urandom(3 << 20))  # a multipart upload
        (here / STATE_FILE).write_bytes(b"state")
        fs, path = open_remote(project, "store")
        mirror = RemoteCheckpoints(fs, path, "k" * 32, "store")
        mirror.push(here)
        keys = {
            obj["Key"]
            for obj in boto3.client("s3", endpoint_url=endpoint)
            .list_objects_v2(Bucket="ckpt")
            .get("Contents", [])
        }
        prefix = f"dvc/sftops-checkpoints/{'k' * 32}"
        assert keys == {
            f"{prefix}/latest.json",
            f"{prefix}/step-000004/checkpoint/model.safetensors",
            f"{prefix}/step-000004/checkpoint/{STATE_FILE}",
        }
        there = tmp_path / "there"
        there.mkdir()
        restored = mirror.pull(there)
        assert restored is not None
        assert (restored / "model.safetensors").read_bytes() == (
            here / "model.safetensors"
        ).read_bytes()
        mirror.clear()
        assert mirror.latest() is None
    finally:
        server.stop()
