"""Runs are isolated: each executes in its own workspace, overrides never reach the checkout,
runs overlap, each is a DVC experiment and an MLflow run, and an identical rerun is cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sftops.config import Params
from tests.helpers import tiny_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]
LR = 0.0003
ENV_SECRET = "hf_sftopsFAKEtokenNOTREAL0123456789"  # a token in the runs' environment
ROW_SECRET = "sk-proj-FAKEkeyNOTREAL0123456789abcdefXYZ"  # an API key inside a data row
PLANTED = {
    "instruction": "Check whether this deployment config is valid.",
    "input": f"OPENAI_API_KEY={ROW_SECRET} timeout=30",
    "output": "The config is valid, but the key must not be committed to a repository.",
}


# Tool-calling conversations (ShareGPT function_call / observation with `tools`; OpenAI
# tool_calls / tool), each with an e-mail address inside its tool result that clean must scrub.
TOOL_PII = "jane.roe.sftops@example.com"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_ROWS = [
    {
        "conversations": [
            {"from": "human", "value": "What is the weather like in Lisbon right now?"},
            {
                "from": "function_call",
                "value": json.dumps({"name": "get_weather", "arguments": {"city": "Lisbon"}}),
            },
            {
                "from": "observation",
                "value": json.dumps({"temp_c": 21, "sky": "clear", "station_contact": TOOL_PII}),
            },
            {"from": "gpt", "value": "It is 21 degrees and clear in Lisbon right now."},
        ],
        "tools": json.dumps([WEATHER_TOOL]),
    },
    {
        "messages": [
            {"role": "user", "content": "Look up the opening hours of the Porto city library."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "find_hours",
                            "arguments": json.dumps({"place": "Porto city library"}),
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": f"Open 9:00-18:00 Monday to Saturday; questions to {TOOL_PII}",
            },
            {"role": "assistant", "content": "The library opens 9 to 6, Monday to Saturday."},
        ],
        "tools": [{"type": "function", "function": {"name": "find_hours", "parameters": {}}}],
    },
]


def plant_rows(repo: Path) -> None:
    """Sources the tiny sample lacks: one row carrying an API key (clean must scrub it) and the
    tool-calling conversations of :data:`TOOL_ROWS`."""
    import yaml

    (repo / "data" / "sample" / "planted.jsonl").write_text(json.dumps(PLANTED) + "\n")
    tools_text = "".join(json.dumps(row) + "\n" for row in TOOL_ROWS)
    (repo / "data" / "sample" / "planted_tools.jsonl").write_text(tools_text)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for name in ("planted.jsonl", "planted_tools.jsonl"):
        params["ingest"]["sources"].append({"path": f"data/sample/{name}", "weight": 1.0})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "planted"],
        cwd=repo,
        check=True,
    )


def experiment_splits(repo: Path) -> dict[str, list[dict[str, object]]]:
    """Every DVC experiment's train / validation / test rows and the train_aug rows training
    read, from the DVC cache through the experiment's dvc.lock (the workspaces are gone)."""
    import pandas as pd
    import yaml

    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    refs = [r for r in refs if not r.startswith("refs/exps/exec/")]  # DVC's own, not runs
    found: dict[str, list[dict[str, object]]] = {}
    for ref in refs:
        lock = subprocess.run(
            ["git", "show", f"{ref}:dvc.lock"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
        stages = yaml.safe_load(lock)["stages"]
        for out in stages["split"]["outs"] + stages["augment"]["outs"]:
            if out["path"].endswith(".parquet"):
                md5 = out["md5"]
                rows = pd.read_parquet(repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:])
                found[f"{ref}:{Path(out['path']).stem}"] = rows.to_dict(orient="records")
    return found


def assert_tool_rows_carried(repo: Path) -> None:
    """Each planted tool conversation reached one split of every run (and train_aug, when in
    train) with its tool definitions and its call and result turns, the e-mail in the result
    replaced by [EMAIL]."""
    splits = experiment_splits(repo)
    runs = {name.split(":")[0] for name in splits}
    assert len(runs) == 3, sorted(splits)  # the two overlapping runs and the rerun
    for ref in runs:
        rows = [
            r
            for name, rs in splits.items()
            if name.startswith(ref) and not name.endswith("_aug")
            for r in rs
        ]
        trained = {str(r["row_id"]) for r in splits[f"{ref}:train_aug"]}
        for tool in ("get_weather", "find_hours"):
            carried = [r for r in rows if tool in str(r.get("tools"))]
            assert len(carried) == 1, (ref, tool, len(carried))
            row = carried[0]
            if row in splits[f"{ref}:train"]:
                assert str(row["row_id"]) in trained  # what training read
            assert [t["function"]["name"] for t in json.loads(str(row["tools"]))] == [tool]
            (segment,) = json.loads(str(row["tool_turns"]))
            assert segment["turn"] == 0
            call, result = segment["messages"]
            assert call["role"] == "tool_call" and call["calls"][0]["name"] == tool
            assert result["role"] == "observation" and "[EMAIL]" in result["content"]
            assert TOOL_PII not in json.dumps(row, default=str)
            assert row["output"].startswith(("It is 21 degrees", "The library opens"))


def files_containing(folder: Path, secret: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(str(path))
    return found


def start_run(repo: Path, home: Path, *sets: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_HOME": str(home),  # each CLI run has its own ephemeral Prefect API
        "PYTHONPATH": str(repo),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "HF_TOKEN": ENV_SECRET,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [a for s in sets for a in ("--set", s)]
    return subprocess.Popen(
        ["sftops", "run", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_overlapping_runs_are_isolated_recorded_and_an_identical_rerun_is_cheap(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    repo = tiny_repo(tmp_path)
    plant_rows(repo)
    params_before = (repo / "params.yaml").read_bytes()
    lock_before = (repo / "dvc.lock").read_bytes()

    started = time.monotonic()
    custom = start_run(repo, tmp_path / "prefect-a", f"train.lr={LR}")
    default = start_run(repo, tmp_path / "prefect-b")
    out_custom, out_default = finish(custom), finish(default)
    overlapped = time.monotonic() - started

    # The checkout is untouched: params, dvc.lock, no outputs, no leftover worktree.
    assert (repo / "params.yaml").read_bytes() == params_before
    assert (repo / "dvc.lock").read_bytes() == lock_before
    assert not (repo / "models" / "sft").exists()
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(worktrees) == 1, worktrees

    # Each run is a DVC experiment of this commit, with its own params.
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    baseline = json.loads(shown)[1]
    experiments = {
        e["name"]: e["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["lr"]
        for e in baseline["experiments"]
    }
    assert sorted(experiments.values()) == sorted([Params().train.lr, LR]), experiments

    # Each run is an MLflow run carrying its experiment name and its learning rate.
    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sftops").experiment_id])
    by_experiment = {r.data.tags["dvc.experiment"]: r for r in runs}
    assert set(by_experiment) == set(experiments)
    for name, lr in experiments.items():
        assert float(by_experiment[name].data.params["train.lr"]) == lr
        assert by_experiment[name].data.tags["git.commit"] == baseline["rev"]
    versions = client.search_model_versions("name='sftops-chat'")
    assert len(versions) == 2
    aliases = client.get_registered_model("sftops-chat").aliases
    assert set(aliases) <= {"challenger", "champion"}
    assert all(str(v) in {str(mv.version) for mv in versions} for v in aliases.values())
    assert "unchanged: already" not in out_custom + out_default

    # A rerun of the default settings: every stage from the cache, nothing registered again.
    started = time.monotonic()
    rerun = finish(start_run(repo, tmp_path / "prefect-b"))
    again = time.monotonic() - started
    assert "unchanged: already sftops-chat" in rerun
    assert len(client.search_model_versions("name='sftops-chat'")) == 2
    assert_tool_rows_carried(repo)
    # Secrets: the environment's token reaches no log, param, tag or artifact; the row's key and
    # the tool result's e-mail were scrubbed before training, so no MLflow artifact
    # (predictions, reports, model) holds them.
    for where in (
        repo / "mlflow.db",
        repo / "mlruns",
        tmp_path / "prefect-a",
        tmp_path / "prefect-b",
    ):
        if where.is_file():
            for secret in (ENV_SECRET, ROW_SECRET, TOOL_PII):
                assert secret.encode() not in where.read_bytes()
        else:
            for secret in (ENV_SECRET, ROW_SECRET, TOOL_PII):
                assert files_containing(where, secret) == []
    assert ENV_SECRET not in out_custom + out_default + rerun

    print(f"two overlapping runs: {overlapped:.0f}s; identical rerun: {again:.0f}s")
