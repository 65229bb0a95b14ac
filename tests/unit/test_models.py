"""Base models: resolving names, loading, errors; the real SmolLM2 in a slow test."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from sftops.errors import SftopsError
from sftops.modeling.formatting import generation_prompt, turn_end_token
from sftops.modeling.models import (
    BUILTIN_MODELS,
    count_parameters,
    load_causal_lm,
    load_tokenizer,
    materialise_gguf,
    model_context_length,
    resolve_model_path,
)
from tests.assets.tiny_models import tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"gpt2": tiny_gpt2(root), "llama": tiny_llama(root)}


def test_tiny_models_are_tiny(tiny_dirs: dict[str, Path]) -> None:
    for folder in tiny_dirs.values():
        assert sum(f.stat().st_size for f in folder.iterdir()) < 1_000_000
        assert (folder / "model.safetensors").is_file()


def test_resolve_local_folder(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = tiny_dirs["gpt2"]
    assert resolve_model_path(str(folder), tmp_path / "cache") == folder.resolve()
    assert not (tmp_path / "cache").exists()  # nothing materialised for a local folder


def test_unknown_name_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SftopsError) as info:
        resolve_model_path("no-such/model", tmp_path)
    message = str(info.value)
    assert message == (
        "unknown model 'no-such/model': not a built-in name (smollm2-135m-instruct), "
        "not a local folder, and the hub is offline"
    )
    assert "\n" not in message


def test_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(SftopsError, match=r"no config\.json"):
        resolve_model_path(str(tmp_path), tmp_path / "cache")


def test_missing_tokenizer_files(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "model-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_dirs["llama"] / name, folder / name)
    with pytest.raises(SftopsError) as info:
        load_tokenizer(folder)
    assert (
        str(info.value) == f"{folder}: no tokenizer files (tokenizer.json / tokenizer_config.json)"
    )
    load_causal_lm(folder)  # the model itself still loads


def test_corrupt_gguf_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.gguf").write_bytes(b"this is not a gguf file" * 100)
    out = tmp_path / "out"
    with pytest.raises(SftopsError) as info:
        materialise_gguf(tmp_path, "x.gguf", out)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'x.gguf'}: cannot load GGUF model")
    assert "\n" not in message
    assert not out.exists()
    # no temp folder left behind (the builders' lock file stays: removing it would race)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "x.gguf"]
    # The same through resolve_model_path with a path to the file.
    with pytest.raises(SftopsError, match=r"x\.gguf: cannot load GGUF model"):
        resolve_model_path(str(tmp_path / "x.gguf"), tmp_path / "cache")


def test_missing_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(SftopsError, match="GGUF file not found"):
        materialise_gguf(tmp_path, "absent.gguf", tmp_path / "out")


def test_count_parameters_and_context_length(tiny_dirs: dict[str, Path]) -> None:
    gpt2: Any = load_causal_lm(tiny_dirs["gpt2"])
    llama: Any = load_causal_lm(tiny_dirs["llama"], dtype="bfloat16")
    assert llama.dtype == torch.bfloat16 and gpt2.dtype == torch.float32
    assert not gpt2.training
    assert model_context_length(gpt2) == 128 and model_context_length(gpt2.config) == 128
    assert model_context_length(llama) == 256
    for model in (gpt2, llama):
        unique = {id(p): p.numel() for p in model.parameters()}
        assert count_parameters(model) == sum(unique.values()) > 0
        assert count_parameters(model, trainable_only=True) == count_parameters(model)
    # Tied embeddings count once: lm_head shares the input embedding matrix.
    embedding = llama.get_input_embeddings().weight
    assert llama.get_output_embeddings().weight.data_ptr() == embedding.data_ptr()
    assert count_parameters(llama) < sum(t.numel() for t in llama.state_dict().values())


def test_load_with_tokenizer_resizes_gpt2(tiny_dirs: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(tiny_dirs["gpt2"])
    model: Any = load_causal_lm(tiny_dirs["gpt2"], tokenizer=tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    end_id = tokenizer.convert_tokens_to_ids(turn_end_token(tokenizer))
    assert end_id in model.generation_config.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    # Batched, left-padded generation runs (pad id inside the resized vocabulary).
    tokenizer.padding_side = "left"
    prompts = [
        generation_prompt(tokenizer, [{"role": "user", "content": text}])
        for text in ("hi", "a longer question here")
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2


def test_bad_dtype(tiny_dirs: dict[str, Path]) -> None:
    with pytest.raises(SftopsError, match="unknown dtype"):
        load_causal_lm(tiny_dirs["llama"], dtype="float7")


def test_builtin_registry_names() -> None:
    assert set(BUILTIN_MODELS) == {"smollm2-135m-instruct"}
    assert BUILTIN_MODELS["smollm2-135m-instruct"].locate().name.endswith(".gguf")


@pytest.mark.slow
def test_smollm2_materialises_and_knows_paris(tmp_path: Path) -> None:
    started = time.perf_counter()
    folder = resolve_model_path("smollm2-135m-instruct", tmp_path)
    first = time.perf_counter() - started
    assert folder == tmp_path / "base_models" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == ["smollm2-135m-instruct"]

    started = time.perf_counter()
    again = resolve_model_path("smollm2-135m-instruct", tmp_path)
    tokenizer = load_tokenizer(again)
    model: Any = load_causal_lm(again, tokenizer=tokenizer)
    cached = time.perf_counter() - started
    print(f"first materialisation {first:.1f} s, cached load {cached:.1f} s")
    assert cached < 30

    assert "quantization_config" not in model.config.to_dict()
    assert model_context_length(model) == 8192
    assert 130e6 < count_parameters(model) < 140e6
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert turn_end_token(tokenizer) == "<|im_end|>"

    prompt = generation_prompt(
        tokenizer, [{"role": "user", "content": "What is the capital of France?"}]
    )
    batch = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
