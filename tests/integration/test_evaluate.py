"""The evaluate stage end to end on a tiny model: every output written, metrics consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sftops.config import CleanParams, Params, SplitParams
from sftops.data.clean import clean_table
from sftops.data.split import split_table
from sftops.evaluation.report import run_evaluate
from sftops.io import write_table
from tests.assets.tiny_models import tiny_llama
from tests.helpers import canonical_table

ROWS = (
    [
        {
            "instruction": "Classify the sentiment.",
            "input": f"review {i} was great",
            "output": "positive",
            "label": "positive",
        }
        for i in range(4)
    ]
    + [
        {"instruction": f"What is {i} plus 1?", "output": f"{i} plus 1 is {i + 1}."}
        for i in range(4)
    ]
    + [{"instruction": "法国的首都是哪里？", "output": "法国的首都是巴黎。"}]
)


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Params, Path]:
    model = tiny_llama(tmp_path / "tiny")
    params = Params.model_validate(
        {
            "paths": {
                "splits_dir": str(tmp_path / "splits"),
                "reports_dir": str(tmp_path / "reports"),
                "model_dir": str(model),
                "cache_dir": str(tmp_path / "cache"),
            },
            "train": {"base_model": str(model), "max_length": 64, "batch_size": 4},
            "evaluate": {
                "generation": {"max_new_tokens": 6, "batch_size": 4},
                "bootstrap_resamples": 50,
                "human_eval_rows": 3,
            },
            # hermetic: never pick up a champion from a registry in the working folder
            "promote": {"compare_champion": False},
        }
    )
    kept = clean_table(canonical_table(ROWS), CleanParams(near_dedup={"enabled": False})).kept
    table = split_table(kept, SplitParams())
    write_table(table.drop(columns="split"), params.paths.split("test"))
    return params, model


def test_evaluate_writes_every_output_and_compares_on_the_same_rows(
    workdir: tuple[Params, Path],
) -> None:
    params, _ = workdir
    metrics = run_evaluate(params)
    reports = Path(params.paths.reports_dir)
    for name in (
        "metrics.json",
        "predictions.jsonl",
        "human_eval.csv",
        "evaluation.md",
        "metrics.png",
        "confusion_matrix.png",
    ):
        assert (reports / name).exists(), name
    assert set(metrics["models"]) == {"base", "candidate"}
    assert metrics["test_rows"] == len(ROWS)
    # base and candidate are the same tiny model here: identical scores, zero difference
    assert metrics["models"]["base"]["token_f1"] == metrics["models"]["candidate"]["token_f1"]
    diff = metrics["differences"]["candidate_vs_base"]["token_f1"]
    assert diff["diff"] == 0 and diff["ci"] == [0, 0]
    # a random tiny model never emits the end-of-turn token within 6 new tokens
    assert metrics["models"]["candidate"]["hit_max_new_tokens"] == len(ROWS)
    assert metrics["models"]["candidate"]["unparseable_labels"] <= 4
    predictions = [json.loads(x) for x in (reports / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == len(ROWS)
    assert {"base_output", "candidate_output", "candidate_scores"} <= set(predictions[0])
    sheet = pd.read_csv(reports / "human_eval.csv")
    assert len(sheet) == 3 and "candidate_rating_1to5" in sheet.columns


def test_rows_without_reference_are_skipped_and_counted(workdir: tuple[Params, Path]) -> None:
    params, _ = workdir
    test = pd.read_parquet(params.paths.split("test"))
    test.loc[0, "output"] = ""
    write_table(test, params.paths.split("test"))
    metrics = run_evaluate(params)
    assert metrics["skipped_no_reference"] == 1 and metrics["test_rows"] == len(ROWS) - 1


def test_empty_test_split_and_missing_model_are_clear_errors(
    workdir: tuple[Params, Path], tmp_path: Path
) -> None:
    from sftops.errors import SftopsError

    params, _ = workdir
    missing = params.model_copy(deep=True)
    missing.paths.model_dir = str(tmp_path / "nope")
    with pytest.raises(SftopsError, match="candidate model folder not found"):
        run_evaluate(missing)
    test = pd.read_parquet(params.paths.split("test"))
    write_table(test.iloc[:0], params.paths.split("test"))
    with pytest.raises(SftopsError, match="test split is empty"):
        run_evaluate(params)


def test_second_evaluation_reads_cached_answers_and_gives_identical_metrics(
    workdir: tuple[Params, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sftops.modeling.generate as generate_module

    params, _ = workdir
    real = generate_module.generate
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generate_module, "generate", counting)
    first = run_evaluate(params)
    # base and candidate are the same folder here: same key, generated once
    assert len(calls) == 1
    second = run_evaluate(params)
    assert len(calls) == 1 and second == first
    changed = params.model_copy(deep=True)
    changed.evaluate.generation.max_new_tokens = 5
    run_evaluate(changed)
    assert len(calls) == 2  # other generation params: another key
    off = params.model_copy(deep=True)
    off.evaluate.cache_answers = False
    assert run_evaluate(off) == first and len(calls) == 4
