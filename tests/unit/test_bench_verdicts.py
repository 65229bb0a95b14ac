"""The bench scripts' verdicts: a missed target gives exit status 1 (the benches themselves run
for minutes and are not part of the suite; these check their pass/fail logic)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_data_bench_checks_the_1m_targets_and_the_recorded_fingerprint() -> None:
    from bench.data_bench import RECORDED_CLEAN, check

    fine = {"size": 1_000_000, "ratio_vs_reference": 1.5, "peak_gib": 3.0, "clean_fingerprint": ""}
    assert check(fine, seed=0) and all(ok for _, ok in check(fine, seed=0))
    slow = {**fine, "ratio_vs_reference": 2.0}
    assert [name for name, ok in check(slow, seed=0) if not ok] == ["stages/rensa ≤ 1.75"]
    heavy = {**fine, "peak_gib": 4.5}
    assert [name for name, ok in check(heavy, seed=0) if not ok] == ["peak ≤ 4 GiB"]
    recorded = RECORDED_CLEAN[(100_000, 0)]
    same = {"size": 100_000, "clean_fingerprint": recorded}
    assert check(same, seed=0) == [("clean output = recorded", True)]
    assert check({**same, "clean_fingerprint": "0" * 16}, seed=0) == [
        ("clean output = recorded", False)
    ]


def test_augment_bench_judges_the_cached_rerun_on_fresh_processes() -> None:
    from bench.augment_bench import verdicts

    assert all(verdicts(2500, 200, 25.0).values())
    missed = [name for name, ok in verdicts(2500, 200, 3.0).items() if not ok]
    assert missed == ["cached rerun (new process) >= 20x"]


def _result(name: str) -> dict[str, Any]:
    metric = {"without": 0.1, "with": 0.2, "diff": 0.1, "ci": [0.0, 0.2]}
    return {
        "setting": {"name": name},
        "primary_metric": "token_f1",
        "test_rows": 10,
        "comparison": {"token_f1": metric, "loss": metric, "verdict": "no difference"},
        "arms": {
            "with_augmentation": {"train_rows": 12, "train_summary": {"steps": 3}},
            "without_augmentation": {"train_rows": 10, "train_summary": {"steps": 3}},
        },
    }


def test_augment_ablation_reuses_previous_results_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.augment_ablation as ablation

    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a reused setting was run again")

    monkeypatch.setattr(ablation, "run_ablation", no_training)
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({n: _result(n) for n in ablation.SETTINGS}), encoding="utf-8")
    assert ablation.main(["--previous", str(previous), "--no-mlflow", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "augment_ablation.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in table for name in ablation.SETTINGS)
    missing = ["--previous", str(tmp_path / "nope.json"), "--out", str(tmp_path)]
    assert ablation.main(missing) == 1


def test_augment_ablation_reruns_a_setting_run_with_other_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.augment_ablation as ablation

    ran: list[str] = []

    def fake_run(params: Any, setting: Any, out: Any, mlflow: bool) -> dict[str, Any]:
        ran.append(setting.name)
        return _result(setting.name)

    monkeypatch.setattr(ablation, "run_ablation", fake_run)
    old = {**_result("lowres_en_100"), "overrides": {"train.max_steps": 1}}
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({"lowres_en_100": old}), encoding="utf-8")
    args = ["--previous", str(previous), "--setting", "lowres_en_100", "--out", str(tmp_path)]
    assert ablation.main([*args, "--no-mlflow"]) == 0
    assert ran == ["lowres_en_100"]
    saved = json.loads((tmp_path / "augment_ablation.json").read_text(encoding="utf-8"))
    assert saved["lowres_en_100"]["overrides"] == ablation.CPU_OVERRIDES
