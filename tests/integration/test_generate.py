"""Greedy decoding that drops finished rows gives exactly the tokens of one-at-a-time
`model.generate`, on tiny Llama and GPT-2 models whose rows stop at different steps."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from sftops.config import GenerationParams
from sftops.errors import SftopsError
from sftops.modeling.generate import (
    Generation,
    generate,
    generate_vllm,
    one_at_a_time,
    stop_token_ids,
    trim_at_stop,
)
from sftops.modeling.models import load_causal_lm, load_tokenizer
from tests.assets.tiny_models import tiny_gpt2, tiny_llama

PROMPTS = [f"Question {i}: what is {i} plus {i * 3}? " * (1 + i % 3) for i in range(9)]
MAX_NEW = 16


def _chatty(build: Any, tmp_path: Path) -> tuple[Any, Any]:
    """A tiny model with large random weights (its greedy output varies with the prompt) whose
    end-of-turn logit copies a common token's, so rows end after different numbers of steps."""
    path = build(tmp_path)
    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path, tokenizer=tokenizer)
    torch.manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() >= 2:
                weight.normal_(0, 0.3)
        tokenizer.padding_side = "left"
        ids = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(
            **ids, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        counts = Counter(out[:, ids["input_ids"].shape[1] :].flatten().tolist())
        head = model.get_output_embeddings().weight
        common = counts.most_common(3)[-1][0]
        head[stop_token_ids(tokenizer)[0]] = head[common] * 1.05
    return model, tokenizer


@pytest.mark.parametrize(
    ("build", "penalty"), [(tiny_llama, 1.0), (tiny_gpt2, 1.3)], ids=["llama", "gpt2-penalty"]
)
def test_greedy_batches_match_one_at_a_time_generate(
    build: Any, penalty: float, tmp_path: Path
) -> None:
    model, tokenizer = _chatty(build, tmp_path)
    cfg = GenerationParams(max_new_tokens=MAX_NEW, batch_size=5, repetition_penalty=penalty)
    reference, _ = one_at_a_time(model, tokenizer, PROMPTS, cfg)
    ours = generate(model, tokenizer, PROMPTS, cfg)
    assert [g.text for g in ours] == [g.text for g in reference]
    assert [g.new_tokens for g in ours] == [g.new_tokens for g in reference]
    assert [g.hit_max_new_tokens for g in ours] == [g.hit_max_new_tokens for g in reference]
    # the case the compaction is for: rows of a batch finishing at different steps
    lengths = {g.new_tokens for g in ours}
    assert len(lengths) >= 3 and any(not g.hit_max_new_tokens for g in ours)


def test_prompt_pass_row_by_row_keeps_one_at_a_time_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompts of each length go through the prompt pass alone (the other extreme of the
    grouping: the test above mixes groups and one-pass batches), their keys/values written into
    one left-padded cache: same tokens as one-at-a-time `generate`."""
    import sftops.modeling.generate as gen

    model, tokenizer = _chatty(tiny_llama, tmp_path)
    cfg = GenerationParams(max_new_tokens=MAX_NEW, batch_size=9)
    reference, _ = one_at_a_time(model, tokenizer, PROMPTS, cfg)
    monkeypatch.setattr(gen, "PREFILL_CALL_TOKENS", 0)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert len(gen.prefill_groups(lengths, 0)) == len(set(lengths)) > 3
    ours = generate(model, tokenizer, PROMPTS, cfg)
    assert [g.text for g in ours] == [g.text for g in reference]
    assert [g.new_tokens for g in ours] == [g.new_tokens for g in reference]


@pytest.mark.parametrize("every", [1, 3], ids=["never-until-all-end", "every-third"])
def test_ended_rows_left_in_the_batch_keep_one_at_a_time_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    """Ended rows leave the batch only once they are 1/``COMPACT_EVERY`` of it; until then
    they go on generating past their stop token, which must not reach their answers."""
    import sftops.modeling.generate as gen

    model, tokenizer = _chatty(tiny_llama, tmp_path)
    cfg = GenerationParams(max_new_tokens=MAX_NEW, batch_size=9)
    reference, _ = one_at_a_time(model, tokenizer, PROMPTS, cfg)
    monkeypatch.setattr(gen, "COMPACT_EVERY", every)
    removed: list[int] = []
    select = gen._reserved_layer_class().batch_select_indices

    def counted(layer: Any, indices: Any) -> None:
        removed.append(len(indices))
        select(layer, indices)

    monkeypatch.setattr(gen._reserved_layer_class(), "batch_select_indices", counted)
    ours = generate(model, tokenizer, PROMPTS, cfg)
    assert [g.text for g in ours] == [g.text for g in reference]
    assert [g.new_tokens for g in ours] == [g.new_tokens for g in reference]
    assert [g.hit_max_new_tokens for g in ours] == [g.hit_max_new_tokens for g in reference]
    assert (not removed) if every == 1 else removed


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_shared_prompt_start_goes_through_once_with_one_at_a_time_tokens(
    build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompts that start alike (a system turn): the shared start goes through the model once,
    its keys/values copied to every row; same tokens as one-at-a-time `generate`."""
    import sftops.modeling.generate as gen

    model, tokenizer = _chatty(build, tmp_path)
    prompts = ["System: answer briefly and well. " + p for p in PROMPTS]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    # long enough to be worth its own forward call
    assert gen.shared_prefix(ids) * (len(ids) - 1) > gen.PREFILL_CALL_TOKENS
    calls: list[int] = []
    forward = model.forward

    @functools.wraps(forward)  # keeps the signature the decoding loop inspects
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counted)
    cfg = GenerationParams(max_new_tokens=MAX_NEW, batch_size=9)
    reference, _ = one_at_a_time(model, tokenizer, prompts, cfg)
    calls.clear()
    ours = generate(model, tokenizer, prompts, cfg)
    assert [g.text for g in ours] == [g.text for g in reference]
    assert [g.new_tokens for g in ours] == [g.new_tokens for g in reference]
    assert len({g.new_tokens for g in ours}) >= 3
    lengths = [len(i) - gen.shared_prefix(ids) for i in ids]
    # the shared start once, then the rest of the prompts in their groups, then the steps
    prompt_calls = 1 + len(gen.prefill_groups(lengths))
    assert len(calls) == prompt_calls + max(g.new_tokens for g in ours) - 1


def test_vllm_engine_without_vllm_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here")
    path = tiny_llama(tmp_path)
    with pytest.raises(SftopsError, match="vllm package is not installed"):
        generate_vllm(path, load_tokenizer(path), ["hi"], GenerationParams())


@pytest.mark.parametrize(
    ("tokens", "stops", "kept", "stopped"),
    [
        ([5, 6, 2, 7, 8], {2}, [5, 6], True),  # mid-sequence: the stop and all after it go
        ([5, 6, 7], {2}, [5, 6, 7], False),  # absent: everything is the answer
        ([2, 5, 6], {2}, [], True),  # at position 0: an empty answer that did stop
        ([5, 3, 6, 2, 3], {2, 3}, [5], True),  # several stop ids: the first of any ends it
        ([5, 6, 2, 2, 9], [2], [5, 6], True),  # repeated stop (padding after a batch row ended)
        ([], {2}, [], False),  # nothing generated
    ],
)
def test_trim_at_stop_keeps_the_tokens_before_the_first_stop_id(
    tokens: list[int], stops: Any, kept: list[int], stopped: bool
) -> None:
    assert trim_at_stop(tokens, stops) == (kept, stopped)


def test_generation_from_tokens_counts_the_stop_token_but_does_not_decode_it() -> None:
    class Letters:  # a tokenizer stand-in: id k decodes to the k-th letter
        def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
            return " " + "".join(chr(ord("a") + i) for i in ids) + " "

    assert Generation.from_tokens(Letters(), [0, 1, 9, 2], {9}) == Generation("ab", 3, False)
    assert Generation.from_tokens(Letters(), [0, 1, 2], {9}) == Generation("abc", 3, True)
    assert Generation.from_tokens(Letters(), [9, 1], {9}) == Generation("", 1, False)
