"""The same recipe under `torchrun` with 2 CPU processes (gloo) matches one process that
accumulates the same two micro-batches per step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from sftops.config import Params
from sftops.modeling.train import train
from tests.helpers import canonical_table
from tests.helpers import ARITHMETIC_ROWS as ROWS
params = Params.model_validate(json.loads({params!r}))
table = canonical_table(ROWS)
result = train(params, table, table.head(6), progress=False)
import torch.distributed as dist
if not dist.is_initialized() or dist.get_rank() == 0:
    print("RESULT " + json.dumps(result.history))
"""


def params(tmp: Path, model: Path, grad_accum: int) -> str:
    return json.dumps(
        {
            "paths": {
                "model_dir": str(tmp / "model"),
                "checkpoints_dir": str(tmp / "ck"),
                "cache_dir": str(tmp / "cache"),
            },
            "train": {
                "base_model": str(model),
                "max_steps": 3,
                "eval_every": 3,
                "save_every": 3,
                "batch_size": 2,
                "grad_accum": grad_accum,
                "max_length": 96,
                "lr": 3e-3,
                "dropout": 0.0,
                "max_eval_rows": 6,
                "early_stopping_patience": None,
                "device": "cpu",
            },
        }
    )


def history(output: str) -> list[dict[str, float]]:
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


def test_two_process_ddp_matches_single_process_accumulation(
    tmp_path: Path, tool_env: dict[str, str]
) -> None:
    from tests.assets.tiny_models import tiny_llama

    model = tiny_llama(tmp_path / "tiny")
    single = tmp_path / "single.py"
    single.write_text(SCRIPT.format(root=str(ROOT), params=params(tmp_path / "s", model, 2)))
    ddp = tmp_path / "ddp.py"
    ddp.write_text(SCRIPT.format(root=str(ROOT), params=params(tmp_path / "d", model, 1)))

    one = subprocess.run(
        [sys.executable, str(single)], capture_output=True, text=True, env=tool_env, timeout=300
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(ddp),
        ],
        capture_output=True,
        text=True,
        env={**tool_env, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = history(one.stdout), history(two.stdout)
    assert [h["step"] for h in a] == [h["step"] for h in b] == [0, 1, 2, 3]
    for x, y in zip(a[1:], b[1:], strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-4)
    assert b[-1]["val_loss"] == pytest.approx(a[-1]["val_loss"], rel=1e-4)
    assert (tmp_path / "d" / "model" / "model.safetensors").exists()


@pytest.fixture(scope="module")
def single_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, float]], Path]:
    """One process accumulating 2 micro-batches per step: the reference for 2 workers x 1."""
    from sftops.config import Params
    from sftops.modeling.train import train
    from tests.assets.tiny_models import tiny_llama
    from tests.helpers import ARITHMETIC_ROWS as ROWS
    from tests.helpers import canonical_table

    tmp = tmp_path_factory.mktemp("single")
    model = tiny_llama(tmp_path_factory.mktemp("tiny"))
    table = canonical_table(ROWS)
    config = Params.model_validate(json.loads(params(tmp, model, 2)))
    return train(config, table, table.head(6), progress=False).history, tmp / "model"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_sftops_train_relaunches_itself_under_torchrun(
    tmp_path: Path,
    tool_env: dict[str, str],
    single_process: tuple[list[dict[str, float]], Path],
    strategy: str,
) -> None:
    """`sftops train` with train.num_processes=2 (the DVC stage command, and the Prefect task via
    run_train) goes through sftops.modeling.launch: 2 gloo workers, same curve as 1 process."""
    import yaml
    from safetensors.torch import load_file

    from sftops.io import write_table
    from tests.assets.tiny_models import tiny_llama
    from tests.helpers import ARITHMETIC_ROWS as ROWS
    from tests.helpers import canonical_table

    model = tiny_llama(tmp_path / "tiny")
    config = json.loads(params(tmp_path, model, 1))
    config["paths"].update(
        splits_dir=str(tmp_path / "splits"), reports_dir=str(tmp_path / "reports")
    )
    config["train"].update(num_processes=2, distributed=strategy, use_augmented=False)
    table = canonical_table(ROWS)
    write_table(table, tmp_path / "splits" / "train.parquet")
    write_table(table.head(6), tmp_path / "splits" / "validation.parquet")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(config))

    done = subprocess.run(
        [sys.executable, "-m", "sftops", "train", "--params", str(params_file)],
        capture_output=True,
        text=True,
        env=tool_env,
        cwd=ROOT,  # infra/launch/<strategy>.yaml of the repo supplies the torchrun flags
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "train_report.json").read_text())
    runs = report["history"]
    single_process_history, single_model = single_process
    assert [h["step"] for h in runs] == [h["step"] for h in single_process_history] == [0, 1, 2, 3]
    for x, y in zip(single_process_history[1:], runs[1:], strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-4)
    assert runs[-1]["val_loss"] == pytest.approx(single_process_history[-1]["val_loss"], rel=1e-4)
    # the saved model is whole (FSDP gathered its shards) and equals the single-process one
    ours = load_file(tmp_path / "model" / "model.safetensors")
    reference = load_file(single_model / "model.safetensors")
    assert ours.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(ours[name], tensor, rtol=1e-3, atol=1e-5)
