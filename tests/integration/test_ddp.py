"""The same recipe under `torchrun` with 2 CPU processes (gloo) matches one process that
accumulates the same two micro-batches per step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from sftops.config import Params
from sftops.modeling.train import train
from tests.helpers import canonical_table
from tests.unit.test_train import ROWS
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
