"""bench/gpu.sh --smoke: every GPU measurement's code path (train vs Trainer for both model
shapes, generate ratio, the demo in a scratch copy) runs on the CPU with tiny sizes, and the one
results file holds every step's figures, so a lent GPU's minutes go to measuring, not debugging."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(3600)
def test_gpu_script_smoke_writes_one_results_file(tmp_path: Path, tool_env: dict[str, str]) -> None:
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        ["bash", "bench/gpu.sh", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env={**tool_env, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=3300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["smoke"] is True
    assert set(results["steps"]) == {"train_gpt2", "train_qwen", "generate", "demo"}
    assert all(step["exit"] == 0 for step in results["steps"].values())
    for name in ("train_gpt2", "train_qwen"):
        sides = results[name]
        assert sides["trainer"]["tokens_per_s"] > 0 and sides["sftops"]["tokens_per_s"] > 0
        assert sides["sftops"]["mfu"] > 0 and sides["speedup"] > 0
    generate = results["generate"]
    assert generate["ratio"] > 0 and 0 <= generate["greedy_match_rate"] <= 1
    assert results["demo"]["metrics"], "the demo wrote no reports/metrics.json"
    assert {c["step"] for c in results["checks"]} == {"train_gpt2", "train_qwen", "generate"}
    assert out.with_suffix(".md").read_text().startswith("# bench/gpu.sh results (smoke")
