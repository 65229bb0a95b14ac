from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sftops.mlops.ablation import ArmResult, compare_arms, table_markdown


def arm(name: str, f1: list[float], loss: list[float]) -> ArmResult:
    return ArmResult(
        name=name,
        train_rows=10,
        train_summary={"steps": 3},
        row_scores={"token_f1": f1},
        row_loss=loss,
        accuracy=None,
        seconds=1.0,
    )


def test_compare_arms_is_paired_and_signs_the_difference() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 80)
    better = arm("with_augmentation", list(np.clip(base + 0.2, 0, 1)), list(1.0 - base * 0.1))
    worse = arm("without_augmentation", list(base), list(1.2 - base * 0.1))
    c = compare_arms(better, worse, "token_f1", 500)
    assert c["token_f1"]["diff"] > 0 and c["token_f1"]["ci"][0] > 0
    assert c["loss"]["diff"] == pytest.approx(-0.2) and c["loss"]["ci"][1] < 0
    assert c["verdict"] == "helps"
    assert compare_arms(worse, better, "token_f1", 500)["verdict"] == "hurts"


def test_nan_losses_are_left_out_of_the_loss_comparison() -> None:
    a = arm("with_augmentation", [1.0, 0.0, 1.0], [0.5, float("nan"), 0.4])
    b = arm("without_augmentation", [1.0, 0.0, 1.0], [0.6, 0.7, float("nan")])
    c = compare_arms(a, b, "token_f1", 200)
    assert c["loss"]["rows"] == 1 and c["loss"]["diff"] == pytest.approx(-0.1)
    assert c["token_f1"]["diff"] == 0 and c["verdict"] == "helps"  # lower loss, same F1


def test_table_lists_both_arms_and_the_interval() -> None:
    a = arm("with_augmentation", [1.0, 1.0], [0.5, 0.4])
    b = arm("without_augmentation", [0.0, 1.0], [0.6, 0.7])
    summary = {
        "setting": {"name": "tiny"},
        "primary_metric": "token_f1",
        "test_rows": 2,
        "arms": {
            "with_augmentation": {"train_rows": 4, "train_summary": {"steps": 3}},
            "without_augmentation": {"train_rows": 2, "train_summary": {"steps": 3}},
        },
        "comparison": compare_arms(a, b, "token_f1", 100),
    }
    line = table_markdown([summary]).splitlines()[-1]
    assert line.startswith("| tiny | 2 (4) | 2 | 3 | 1 | token_f1 | 0.5000 | 1.0000 | +0.5000 [")


def test_seeds_are_averaged_per_row_and_each_seed_is_kept() -> None:
    from sftops.mlops.ablation import average_seeds

    runs = [
        arm("with_augmentation", [1.0, 0.0], [0.5, float("nan")]),
        arm("with_augmentation", [0.0, 0.0], [0.7, 0.9]),
    ]
    merged = average_seeds(runs, "token_f1", first_seed=3)
    assert merged.row_scores["token_f1"] == [0.5, 0.0]
    assert merged.row_loss == pytest.approx([0.6, 0.9])  # a NaN seed leaves the other
    assert [s["seed"] for s in merged.per_seed] == [3, 4]
    assert [s["token_f1"] for s in merged.per_seed] == [0.5, 0.0]
    assert merged.seconds == 2.0


def test_row_losses_in_batches_equal_one_row_at_a_time(tmp_path: Path) -> None:
    import pandas as pd

    from sftops.config import Params
    from sftops.mlops.ablation import row_losses
    from sftops.modeling.data import encode_rows, single_rows
    from sftops.modeling.loss import mean_loss
    from sftops.modeling.models import load_causal_lm, load_tokenizer
    from tests.assets.tiny_models import tiny_llama

    folder = tiny_llama(tmp_path / "tiny")
    tokenizer = load_tokenizer(folder)
    model = load_causal_lm(folder, tokenizer=tokenizer)
    test = pd.DataFrame(
        {
            "instruction": ["What is the capital of France?", "Add the numbers.", "Say hi."],
            "input": ["", "1 + 2 and 10 * 10, then more words to make this row longer", ""],
            "output": ["Paris.", "3 and 100", "hi"],
        }
    )
    params = Params()
    batched = row_losses(model, tokenizer, test, params, batch_size=2)
    for i in range(len(test)):
        examples, _ = encode_rows(test.iloc[[i]], tokenizer, params.train.max_length)
        alone = mean_loss(
            model, single_rows(examples), 1, tokenizer.pad_token_id, False, model.device, None
        )
        assert batched[i] == pytest.approx(alone, rel=1e-4)


def test_zero_seeds_is_a_clear_error(tmp_path: Path) -> None:
    from sftops.config import Params
    from sftops.errors import SftopsError
    from sftops.mlops.ablation import AblationSetting, ablate_augment

    with pytest.raises(SftopsError, match="seeds must be >= 1"):
        ablate_augment(Params(), AblationSetting("none", seeds=0), tmp_path)


def test_a_loss_gain_carried_by_one_seed_is_no_difference() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 200)
    with_aug = arm("with_augmentation", list(base), list(1.0 - base * 0.1 - 0.05))
    without = arm("without_augmentation", list(base), list(1.0 - base * 0.1))
    with_aug.per_seed = [
        {"seed": s, "token_f1": 0.5, "loss": loss} for s, loss in enumerate([0.6, 0.4, 0.62])
    ]
    without.per_seed = [{"seed": s, "token_f1": 0.5, "loss": 0.58} for s in range(3)]
    c = compare_arms(with_aug, without, "token_f1", 300)
    assert c["loss"]["ci"][1] < 0  # the rows alone would say "helps"
    assert [round(d["loss"], 2) for d in c["per_seed"]] == [0.02, -0.18, 0.04]
    assert c["verdict"] == "no_difference"
    with_aug.per_seed[2]["loss"] = 0.5
    assert compare_arms(with_aug, without, "token_f1", 300)["verdict"] == "helps"
