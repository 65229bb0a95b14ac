"""The training recipe on tiny models built in the test: exact resume, packing without
cross-example attention, token-level loss normalisation across accumulation, methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from sftops.config import Params
from sftops.modeling.data import Example, collate, pack_examples, single_rows
from sftops.modeling.models import load_causal_lm, load_tokenizer
from sftops.modeling.train import TrainState, token_loss_sum, train
from tests.assets.tiny_models import tiny_gpt2, tiny_llama
from tests.helpers import canonical_table

ROWS = [
    {"instruction": f"What is {a} plus {b}?", "output": f"{a} plus {b} is {a + b}."}
    for a in range(3, 9)
    for b in range(2, 6)
] + [{"instruction": "法国的首都是哪里？", "output": "法国的首都是巴黎。"}]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"llama": tiny_llama(root / "llama"), "gpt2": tiny_gpt2(root / "gpt2")}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return canonical_table(ROWS)


def params(tmp_path: Path, model: Path, **train: Any) -> Params:
    base = {
        "base_model": str(model),
        "max_steps": 6,
        "eval_every": 3,
        "save_every": 2,
        "batch_size": 2,
        "grad_accum": 2,
        "max_length": 96,
        "lr": 3e-3,
        "dropout": 0.1,
        "early_stopping_patience": None,
        "max_eval_rows": 6,
    }
    return Params.model_validate(
        {
            "paths": {
                "model_dir": str(tmp_path / "model"),
                "checkpoints_dir": str(tmp_path / "ck"),
                "cache_dir": str(tmp_path / "cache"),
            },
            "train": {**base, **train},
        }
    )


def losses(history: list[dict[str, float]]) -> list[float]:
    """Train and validation losses in order (-1 where a step has none; step 0 has no train)."""
    flat = []
    for h in history:
        flat += [h.get("train_loss", -1.0) if h["step"] else -1.0, h.get("val_loss", -1.0)]
    return flat


def test_training_lowers_the_validation_loss_and_writes_safetensors(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    result = train(
        params(tmp_path, models["llama"], max_steps=12), table, table.head(6), progress=False
    )
    assert result.best_val_loss < result.base_val_loss - 0.3
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"model.safetensors", "tokenizer.json", "train_params.json"} <= files
    assert not any(name.endswith(".bin") for name in files)


def test_resumed_run_has_the_same_loss_curve_as_an_uninterrupted_one(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    full = train(params(tmp_path / "a", models["llama"]), table, table.head(6), progress=False)
    cut = params(tmp_path / "b", models["llama"])

    def kill_after_step_5(state: TrainState) -> None:
        if state.step == 5:
            raise KeyboardInterrupt  # the last checkpoint is step 4 (save_every=2)

    with pytest.raises(KeyboardInterrupt):
        train(cut, table, table.head(6), progress=False, on_step=kill_after_step_5)
    resumed = train(cut, table, table.head(6), resume=True, progress=False)
    assert resumed.steps == full.steps == 6
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]
    assert losses(resumed.history) == pytest.approx(losses(full.history), rel=1e-5)


def test_packed_rows_do_not_attend_across_examples(models: dict[str, Path]) -> None:
    for name in ("llama", "gpt2"):
        tokenizer = load_tokenizer(models[name])
        model: Any = load_causal_lm(models[name], tokenizer=tokenizer)
        texts = ["What is the capital of France?", "1 + 2 = 3", "def add(a, b):"]
        examples = [Example(ids, ids) for ids in (tokenizer(t)["input_ids"] for t in texts)]
        packed = collate(pack_examples(examples, 64), tokenizer.pad_token_id, packed=True)
        assert packed["input_ids"].shape[0] == 1  # all three share one row
        with torch.no_grad():
            # use_cache=False as in training: with a cache, transformers skips the packed mask
            logits = model(
                input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
            ).logits[0]
            row = pack_examples(examples, 64)[0]
            start = 0
            # pack order is longest first; compare each segment to the example run alone
            for ids in sorted((e.input_ids for e in examples), key=len, reverse=True):
                alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
                segment = logits[start : start + len(ids)]
                torch.testing.assert_close(segment, alone, atol=1e-4, rtol=1e-4)
                start += len(ids)
            assert start == len(row.input_ids)


def test_loss_is_normalised_per_token_across_micro_batches(models: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(models["llama"])
    model: Any = load_causal_lm(models["llama"], tokenizer=tokenizer)
    lengths = [3, 9, 4, 15]
    examples = [Example(list(range(5, 5 + n)), list(range(5, 5 + n))) for n in lengths]
    rows = single_rows(examples)
    pad = tokenizer.pad_token_id

    def gradient(groups: list[list[int]]) -> torch.Tensor:
        model.zero_grad()
        micro = [collate([rows[i] for i in g], pad, packed=False) for g in groups]
        total = sum(int((m["labels"][:, 1:] != -100).sum()) for m in micro)
        for batch in micro:
            loss_sum, _ = token_loss_sum(model, batch)
            (loss_sum / total).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    one_batch = gradient([[0, 1, 2, 3]])
    accumulated = gradient([[0], [1, 2], [3]])
    torch.testing.assert_close(one_batch, accumulated, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("method", ["lora", "freeze"])
def test_lora_and_freeze_train_only_their_parameters(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame, method: str
) -> None:
    result = train(
        params(tmp_path, models["llama"], method=method, max_steps=3, trainable_layers=1),
        table,
        table.head(4),
        progress=False,
    )
    assert result.steps == 3
    before: Any = load_causal_lm(models["llama"])
    after: Any = load_causal_lm(tmp_path / "model")
    changed = {
        name
        for name, p in after.state_dict().items()
        if not torch.equal(p, before.state_dict()[name])
    }
    if method == "freeze":
        assert changed and all(".layers.1." in name for name in changed)
    else:  # LoRA adapters are merged into the saved weights: attention/MLP matrices move
        assert changed and all("embed" not in name and "norm" not in name for name in changed)


def test_gpt2_family_trains_with_the_defined_template(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    result = train(
        params(tmp_path, models["gpt2"], max_steps=4, kl_coef=0.1),
        table,
        table.head(4),
        progress=False,
    )
    assert result.steps == 4 and result.best_val_loss < result.base_val_loss


def test_max_length_over_the_context_is_one_clear_error(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    from sftops.errors import SftopsError

    with pytest.raises(SftopsError, match=r"train\.max_length: must be ≤ the model's context"):
        train(params(tmp_path, models["gpt2"], max_length=100_000), table, table, progress=False)


def test_early_stopping_keeps_the_best_checkpoint(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    # A learning rate far too high: validation loss gets worse after the first evaluation.
    result = train(
        params(
            tmp_path,
            models["llama"],
            lr=0.5,
            max_steps=20,
            eval_every=1,
            early_stopping_patience=2,
            warmup_ratio=0.0,
        ),
        table,
        table.head(6),
        progress=False,
    )
    assert result.stopped_early and result.steps < 20
    val = [h["val_loss"] for h in result.history[1:] if "val_loss" in h]
    assert result.best_val_loss == pytest.approx(min(val))
    saved = train(
        params(tmp_path / "eval", tmp_path / "model", max_steps=1, lr=1e-12, warmup_ratio=0.0),
        table,
        table.head(6),
        progress=False,
    )
    assert saved.base_val_loss == pytest.approx(result.best_val_loss, rel=1e-4)


def test_gradient_checkpointing_gives_the_same_losses(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    plain = train(
        params(tmp_path / "a", models["llama"], max_steps=2, dropout=0.0),
        table,
        table.head(4),
        progress=False,
    )
    ckpt = train(
        params(tmp_path / "b", models["llama"], max_steps=2, dropout=0.0, grad_checkpointing=True),
        table,
        table.head(4),
        progress=False,
    )
    assert losses(ckpt.history) == pytest.approx(losses(plain.history), rel=1e-4)


def test_out_of_memory_is_one_line_naming_the_params(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.errors import SftopsError
    from sftops.modeling import train as train_module

    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train_module, "token_loss_sum", no_memory)
    monkeypatch.setattr(train_module, "mean_loss", lambda *a, **k: 1.0)
    with pytest.raises(SftopsError) as info:
        train(params(tmp_path, models["llama"]), table, table.head(4), progress=False)
    assert str(info.value).startswith("params.yaml: train.batch_size: out of cpu memory at 2 rows")
    assert not (tmp_path / "model").exists()  # nothing left looking like a finished model


def _full_logits_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )


@pytest.mark.parametrize("name", ["llama", "gpt2", "llama-lora"])
def test_lm_head_on_target_positions_only_equals_the_full_logits_loss(
    models: dict[str, Path], name: str
) -> None:
    from peft import LoraConfig, get_peft_model

    from sftops.modeling.loss import CausalLMLoss, _head_split

    tokenizer = load_tokenizer(models[name.split("-")[0]])
    model: Any = load_causal_lm(models[name.split("-")[0]], tokenizer=tokenizer)
    if name.endswith("lora"):
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    assert _head_split(model) is not None  # the shortcut is taken, not the fallback
    model.train()
    torch.manual_seed(0)
    prompt, answer = [-100] * 5, list(range(20, 27))
    examples = [
        Example(list(range(10, 22)), prompt + answer),
        Example(list(range(30, 37)), [-100] * 3 + list(range(33, 37))),
    ]
    for packed in (True, False):
        rows = pack_examples(examples, 64) if packed else single_rows(examples)
        batch = collate(rows, tokenizer.pad_token_id, packed=packed)
        grads = []
        for fast_path in (False, True):
            model.zero_grad()
            torch.manual_seed(1)  # same dropout masks for both
            loss = CausalLMLoss(model)(**batch) if fast_path else _full_logits_loss(model, batch)
            loss.backward()
            grads.append(
                (float(loss), [p.grad.clone() for p in model.parameters() if p.grad is not None])
            )
        (full, full_grads), (fast, fast_grads) = grads
        assert fast == pytest.approx(full, rel=1e-5)
        for a, b in zip(full_grads, fast_grads, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_trains_on_cpu(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    """The GPU precision path (bf16 autocast, fp32 master weights) runs here on the CPU."""
    fp32 = train(
        params(tmp_path / "a", models["llama"], max_steps=4, dropout=0.0, precision="fp32"),
        table,
        table.head(6),
        progress=False,
    )
    bf16 = train(
        params(tmp_path / "b", models["llama"], max_steps=4, dropout=0.0, precision="bf16"),
        table,
        table.head(6),
        progress=False,
    )
    assert bf16.best_val_loss < bf16.base_val_loss - 0.1
    # bf16 matmuls round to 8 mantissa bits: close to fp32, not equal
    assert losses(bf16.history) == pytest.approx(losses(fp32.history), rel=3e-2)
    assert losses(bf16.history) != losses(fp32.history)
    weights = load_causal_lm(tmp_path / "b" / "model").state_dict()
    assert all(t.dtype == torch.float32 for t in weights.values())  # master weights stay fp32


def test_precision_auto_is_fp32_on_cpu_and_bf16_can_be_forced() -> None:
    from sftops.config import TrainParams
    from sftops.modeling.hardware import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype(TrainParams(precision="auto"), cpu) is None
    assert autocast_dtype(TrainParams(precision="fp32"), cpu) is None
    assert autocast_dtype(TrainParams(precision="bf16"), cpu) is torch.bfloat16


@pytest.mark.slow
@pytest.mark.timeout(1800)  # inductor's C++ builds take minutes on a busy 2-core machine
def test_compiled_training_matches_eager(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    """torch.compile (inductor, CPU here) of the loss module: the GPU recipe's compile path."""
    eager = train(
        params(tmp_path / "a", models["llama"], max_steps=3, dropout=0.0),
        table,
        table.head(4),
        progress=False,
    )
    compiled = train(
        params(tmp_path / "b", models["llama"], max_steps=3, dropout=0.0, compile=True),
        table,
        table.head(4),
        progress=False,
    )
    assert losses(compiled.history) == pytest.approx(losses(eager.history), rel=1e-3)


def test_time_budget_stops_training_and_ends_the_schedule(
    tmp_path: Path, models: dict[str, Path], table: pd.DataFrame
) -> None:
    budget = params(tmp_path, models["llama"], max_steps=10_000, max_seconds=3.0, eval_every=10_000)
    result = train(budget, table, table.head(6), progress=False)
    assert result.stopped_on_time and 1 <= result.steps < 10_000
    last = result.history[-1]
    assert last["seconds"] >= 3.0 and "val_loss" in last  # evaluated once at the end
    assert last["lr"] == pytest.approx(0.1 * budget.train.lr)  # cosine reached its floor
    assert (tmp_path / "model" / "model.safetensors").exists()
    resumed = train(budget, table, table.head(6), resume=True, progress=False)
    assert resumed.steps == result.steps  # the budget is spent: nothing more to do


def test_launch_is_needed_only_for_several_processes_outside_torchrun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sftops.config import TrainParams
    from sftops.modeling.launch import launch_config, needs_launch

    for key in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not needs_launch(TrainParams())
    assert needs_launch(TrainParams(num_processes=2))
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not needs_launch(TrainParams(num_processes=2))  # already a worker
    root = Path(__file__).resolve().parents[2]
    for strategy in ("ddp", "fsdp"):
        config = launch_config(strategy, root)
        assert config["torchrun"]["max_restarts"] == 0
        assert all(isinstance(v, str) for v in config["env"].values())
