"""The team stack for real: PostgreSQL, the object store (moto), the Prefect server on
PostgreSQL, the MLflow server on PostgreSQL with proxied S3 artifacts, and a Prefect worker on
a process pool; the `retrain` deployment triggered through the API runs in the worker's clone
of the project, then the stack is restarted and everything it recorded is still there.

Run with ``python -m pytest -m stack tests/stack`` (about 5-10 minutes on 2 shared cores).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import MLFLOW_PASSWORD, MLFLOW_USER, PREFECT_AUTH

pytestmark = [
    pytest.mark.stack,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(shutil.which("git") is None, reason="git missing"),
]

MODEL_NAME = "sftops-chat"
RUN_TIMEOUT_S = 600
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RESULTS: dict[str, Any] = {}  # what the first test saw, checked again after the restart


def _basic(auth: str) -> str:
    return "Basic " + base64.b64encode(auth.encode()).decode()


def request(
    url: str, payload: Any = None, auth: str | None = PREFECT_AUTH, method: str | None = None
) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", _basic(auth))
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, None


def api(stack: Any, path: str, payload: Any = None, method: str | None = None) -> Any:
    status, body = request(f"{stack.urls.prefect_api}{path}", payload, method=method)
    assert status in (200, 201), f"{path}: HTTP {status}"
    return body


def deployments(stack: Any) -> dict[str, str]:
    flows = {f["id"]: f["name"] for f in api(stack, "/flows/filter", {"limit": 50})}
    found = api(stack, "/deployments/filter", {"limit": 50})
    return {f"{flows[d['flow_id']]}/{d['name']}": d["id"] for d in found}


def wait_for_run(stack: Any, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        run = api(stack, f"/flow_runs/{run_id}")
        state = (run.get("state") or {}).get("type", "")
        if state != last:
            print(f"flow run {run['name']}: {state}")
            last = state
        if state in TERMINAL:
            return dict(run)
        time.sleep(3)
    log = stack.paths.logs / "worker.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    raise AssertionError(f"retrain still {last} after {timeout:.0f}s:\n{tail}")


def mlflow_client(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD)
    return MlflowClient(tracking_uri=stack.urls.mlflow, registry_uri=stack.urls.mlflow)


def bucket_keys(stack: Any, bucket: str) -> set[str]:
    keys: set[str] = stack.objectstore.keys(bucket)
    return keys


def lock_outs(lock: dict[str, Any]) -> dict[str, str]:
    """path -> md5 of every output in a dvc.lock (directories end in ``.dir``)."""
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if "md5" in out
    }


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_status_reports_every_service_healthy(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sftops.cli import app

    assert stack.health() == dict.fromkeys(
        ("postgres", "s3", "prefect-server", "mlflow", "worker"), "ok"
    )
    monkeypatch.chdir(stack.paths.root)
    result = CliRunner().invoke(app, ["stack", "status", "--state-dir", str(stack.paths.state)])
    assert result.exit_code == 0, result.output
    assert stack.urls.prefect in result.output and stack.urls.mlflow in result.output
    assert "basic auth" in result.output and "basic-auth app" in result.output


def test_auth_refuses_a_wrong_password_on_both_servers(stack: Any) -> None:
    prefect = f"{stack.urls.prefect_api}/deployments/filter"
    mlflow = f"{stack.urls.mlflow}/api/2.0/mlflow/experiments/search?max_results=5"
    user = PREFECT_AUTH.split(":")[0]
    assert request(prefect, {"limit": 1}, auth=None)[0] == 401
    assert request(prefect, {"limit": 1}, auth=f"{user}:wrong-password")[0] == 401
    assert request(prefect, {"limit": 1}, auth=PREFECT_AUTH)[0] == 200
    assert request(mlflow, auth=None)[0] == 401
    assert request(mlflow, auth=f"{MLFLOW_USER}:wrong-password-123")[0] == 401
    assert request(mlflow, auth=f"{MLFLOW_USER}:{MLFLOW_PASSWORD}")[0] == 200


def test_retrain_deployment_runs_through_the_worker(
    stack: Any, stack_project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.stack.deployments import names
    from sftops.stack.settings import DVC_BUCKET, MLFLOW_BUCKET

    found = deployments(stack)
    assert set(names("process")) <= set(found), found
    deployment = api(stack, f"/deployments/{found['retrain/nightly']}")
    assert deployment["work_pool_name"] == "sftops"
    clone_step = deployment["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=stack_project["repo"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert clone_step["commit_sha"] == commit

    # Trigger through the API; keep the run's folder (the worker deletes its temporary one).
    run_dir = stack_project["repo"].parent / "run-1"
    run_dir.mkdir()
    started = time.monotonic()
    created = api(
        stack,
        f"/deployments/{found['retrain/nightly']}/create_flow_run",
        {"job_variables": {"working_dir": str(run_dir)}},
    )
    run = wait_for_run(stack, created["id"], RUN_TIMEOUT_S)
    seconds = time.monotonic() - started
    print(f"tiny retrain through the worker: {seconds:.1f}s")
    if run["state"]["type"] != "COMPLETED":
        log = stack.paths.logs / "worker.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
        pytest.fail(f"retrain ended {run['state']['type']}:\n{tail}")
    assert run["deployment_id"] == found["retrain/nightly"]

    # It ran in a clone of the project at the deployed commit, not in the checkout.
    clones = [p.parent for p in run_dir.glob("*/.git")]
    assert len(clones) == 1, clones
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=clones[0], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert head == commit
    assert not (stack_project["repo"] / "models" / "sft").exists()

    # MLflow (PostgreSQL-backed): the run, a registered version with aliases, its artifacts in S3.
    client = mlflow_client(stack, monkeypatch)
    model = client.get_registered_model(MODEL_NAME)
    # challenger: the new version; champion only when it beats the base model (a 2-step tiny
    # model does not, so the gate's refusal is what this run records)
    assert "challenger" in model.aliases, model.aliases
    version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params.get("train.max_steps") == "2"
    keys = bucket_keys(stack, MLFLOW_BUCKET)
    assert any(version.run_id in key for key in keys), sorted(keys)[:20]
    assert any(key.endswith(".safetensors") for key in keys), sorted(keys)[:20]

    # DVC: the run was saved as an experiment in the clone (its worktree is gone); the
    # experiment's dvc.lock names the outputs the run pushed to the S3 remote ...
    tags = {**mlflow_run.data.tags, **version.tags}
    revs = [v for k, v in tags.items() if k.endswith("experiment_rev")]
    assert revs, f"no DVC experiment among the lineage tags: {sorted(tags)}"
    lock_text = subprocess.run(
        ["git", "show", f"{revs[0]}:dvc.lock"],
        cwd=clones[0],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lock = yaml.safe_load(lock_text)
    assert "train" in lock["stages"]
    outs = lock_outs(lock)
    dvc_keys = bucket_keys(stack, DVC_BUCKET)
    missing = [
        path for path, md5 in outs.items() if f"dvc/files/md5/{md5[:2]}/{md5[2:]}" not in dvc_keys
    ]
    assert not missing, f"not in the S3 remote: {missing}"

    # The train stage mirrored its checkpoints to the S3 remote while it ran (the deployments
    # set SFTOPS_CHECKPOINT_REMOTE) and removed them when it completed.
    worker_log = (stack.paths.logs / "worker.log").read_text(errors="replace")
    assert re.search(r"checkpoint step-\d+ pushed in", worker_log), worker_log[-3000:]
    assert "removed from default (s3://" in worker_log, worker_log[-3000:]
    assert not [key for key in dvc_keys if "sftops-checkpoints/" in key]

    # ... and a fresh clone restores exactly those hashes from it.
    fresh = stack_project["repo"].parent / "fresh"
    subprocess.run(["git", "clone", "-q", str(stack_project["repo"]), str(fresh)], check=True)
    (fresh / "dvc.lock").write_text(lock_text, encoding="utf-8")
    env = stack.client_env()
    dvc = [str(Path(sys.executable).parent / "dvc")]
    for cmd in (
        ["remote", "modify", "--local", "objectstore", "endpointurl", stack.urls.s3],
        ["pull", "-r", "objectstore"],
    ):
        subprocess.run([*dvc, *cmd], cwd=fresh, env=env, check=True, capture_output=True)
    for path, md5 in outs.items():
        if md5.endswith(".dir"):
            assert (fresh / path).is_dir(), path
        else:
            assert file_md5(fresh / path) == md5, path
    status = subprocess.run(
        [*dvc, "status", "--json"], cwd=fresh, env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(status.stdout or "{}") == {}, status.stdout

    RESULTS.update(
        deployments=found,
        deployment_updated=api(stack, f"/deployments/{found['retrain/nightly']}")["updated"],
        flow_run=created["id"],
        version=version.version,
        aliases=dict(model.aliases),
        mlflow_keys=keys,
        dvc_keys=dvc_keys,
        retrain_seconds=seconds,
    )


def test_restart_keeps_deployments_runs_registry_and_artifacts(
    stack: Any, monkeypatch: pytest.MonkeyPatch, leftovers: Any
) -> None:
    from sftops.stack.settings import DVC_BUCKET, MLFLOW_BUCKET

    if not RESULTS:
        pytest.skip("needs the retrain test's results")
    from sftops.stack.team import Stack

    records = dict(stack.state.processes)
    # stopped and started by new Stack objects, as separate `sftops stack` commands would
    Stack(stack.paths.root, stack.paths.state, env=stack.env).down()
    assert not leftovers(stack, records)
    started = time.monotonic()
    stack = Stack(stack.paths.root, stack.paths.state, env=stack.env)
    stack.up(timeout=300)
    print(f"stack restart: {time.monotonic() - started:.1f}s")

    found = deployments(stack)
    assert found == RESULTS["deployments"]
    # read back from PostgreSQL, not deployed again
    updated = api(stack, f"/deployments/{found['retrain/nightly']}")["updated"]
    assert updated == RESULTS["deployment_updated"]
    run = api(stack, f"/flow_runs/{RESULTS['flow_run']}")
    assert run["state"]["type"] == "COMPLETED"
    client = mlflow_client(stack, monkeypatch)
    model = client.get_registered_model(MODEL_NAME)
    assert dict(model.aliases) == RESULTS["aliases"]
    assert bucket_keys(stack, MLFLOW_BUCKET) == RESULTS["mlflow_keys"]
    assert bucket_keys(stack, DVC_BUCKET) == RESULTS["dvc_keys"]
    # an artifact read back through the MLflow server's proxy, from the restored store
    version = client.get_model_version(MODEL_NAME, RESULTS["version"])
    listed = client.list_artifacts(version.run_id)
    assert listed, "the run's artifacts are not listed after the restart"
