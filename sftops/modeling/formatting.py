"""One chat format for train, evaluate and serve.

Every stage turns a canonical row into chat *messages* with :func:`row_to_messages` and renders
them with the tokenizer's own chat template (``tokenizer.apply_chat_template``), so the text a
model is trained on is byte for byte the text it is prompted with later:

- train: :func:`encode_conversation` gives ``input_ids`` + ``labels`` (loss on the assistant
  turns' content and their end-of-turn token only, so the model learns to stop);
- evaluate / serve: :func:`generation_prompt` renders the conversation without the answer and
  with the assistant header appended; generation stops at :func:`turn_end_token`.

Template-less tokenizers (the GPT-2 family) get :data:`CHATML_TEMPLATE` and the ChatML special
tokens from :func:`prepare_tokenizer`. Adding tokens grows the vocabulary, so the model's
embeddings must then be resized: call :func:`resize_embeddings_if_needed` on every model used
with a prepared tokenizer (``sftops.modeling.models.load_causal_lm(..., tokenizer=tok)`` does).

Tool calling (rows with ``tools`` / ``tool_turns``, see :mod:`sftops.data.ingest`):
:func:`row_to_messages` emits the transformers message format (an assistant message with
``tool_calls``, ``{"role": "tool"}`` results) preceded by a pseudo message
``{"role": "tools", "tools": [...]}`` carrying the tool definitions, so callers pass tools
through without knowing about them. Rendering then depends on the template:

- a template that handles tools (it uses both ``tools`` and ``tool_calls``) renders them
  itself: ``apply_chat_template(messages, tools=...)``;
- any other template gets the documented fallback, :func:`tool_fallback_messages`, in the
  Hermes / Qwen2.5 convention written as plain messages: the tool definitions are appended to
  the system message inside ``<tools></tools>``, each call becomes assistant text
  ``<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>``, and consecutive tool
  results become one user message of ``<tool_response>...</tool_response>`` blocks.

Either way the loss is on every assistant message (tool calls included) and never on tool
results, which the model reads but does not write.

Gotchas worth knowing:

- Some templates inject a default system message when the conversation has none (SmolLM2's adds
  "You are a helpful AI assistant named SmolLM, trained by Hugging Face"). That is kept on
  purpose: train, evaluate and serve all go through the same template, so they agree.
- ``encode_conversation`` encodes the rendered text segment by segment (masked prefix, learned
  assistant turn, ...). The ids decode to exactly the template's rendering, but at a segment
  boundary the BPE split may differ from tokenising the whole string at once (never across a
  special token, which is where ChatML boundaries fall).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
"""Label value ignored by the cross-entropy loss (PyTorch / transformers convention)."""

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = "<|pad|>"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML (``<|im_start|>role\\ncontent<|im_end|>\\n``), for tokenizers without a template.

No default system message is injected: a conversation without one renders without one.
"""

TOOLS_ROLE = "tools"
"""Role of the pseudo message (first in the list) that carries a row's tool definitions."""

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{tools}\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)
"""The fallback's tool block (Qwen2.5's wording), appended to the system message."""

_PROBE_CONTENT = "\u2063sftops-probe\u2063"
"""Assistant content used to discover where a template puts the end-of-turn token."""


def _text(value: Any) -> str:
    """A cell as text: None / NaN / pandas NA -> ""; everything else ``str``."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        import pandas as pd

        if value is pd.NA:
            return ""
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return str(value)


def _history_turns(value: Any) -> list[tuple[str, str]]:
    """Parse the ``history`` cell: a JSON string (or a list) of ``[user, assistant]`` pairs."""
    if isinstance(value, str):
        raw: Any = json.loads(value) if value.strip() else []
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        raw = []
    else:
        raw = list(value)
    turns: list[tuple[str, str]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"history turn {i} is not a [user, assistant] pair: {pair!r}")
        turns.append((_text(pair[0]), _text(pair[1])))
    return turns


def _json_cell(value: Any) -> list[Any]:
    """A JSON-list cell (``tools``, ``tool_turns``); missing / empty -> []."""
    text = _text(value)
    if not text.strip():
        return []
    parsed = json.loads(text)
    if not isinstance(parsed, list):
        raise ValueError(f"expected a JSON list, got {type(parsed).__name__}")
    return parsed


def _chat_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical tool message (``tool_call`` / ``observation``) in the transformers format."""
    if message["role"] == "tool_call":
        calls = [
            {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in message["calls"]
        ]
        return {"role": "assistant", "content": message.get("content") or "", "tool_calls": calls}
    if message["role"] == "observation":
        out = {"role": "tool", "content": _text(message.get("content"))}
        if message.get("name"):
            out["name"] = message["name"]
        return out
    raise ValueError(f"unexpected role {message['role']!r} in tool_turns")


def row_to_messages(
    row: Mapping[str, Any] | Any, *, include_output: bool = True
) -> list[dict[str, Any]]:
    """Turn a canonical row (a dict or a pandas row) into chat messages.

    Order: the tool definitions (a ``{"role": "tools"}`` pseudo message, only if the row has
    tools), ``system`` (only if non-empty), then each ``history`` turn as a user/assistant pair,
    then the user turn ``instruction`` (+ ``"\\n\\n" + input`` when ``input`` is non-empty),
    then the assistant turn ``output`` (left out with ``include_output=False``, e.g. to build a
    generation prompt). Tool calls and results (``tool_turns``) go before the assistant text of
    their turn; a conversation that ends with a tool call ends with that call (left out with
    ``include_output=False``). Missing columns count as empty.
    """

    def get(key: str) -> Any:
        try:
            return row[key]
        except (KeyError, IndexError):
            return None

    messages: list[dict[str, Any]] = []
    tools = _json_cell(get("tools"))
    if tools:
        messages.append({"role": TOOLS_ROLE, "tools": tools})
    system = _text(get("system"))
    if system.strip():
        messages.append({"role": "system", "content": system})
    segments = {int(t["turn"]): t for t in _json_cell(get("tool_turns"))}
    history = _history_turns(get("history"))
    for number, (user, assistant) in enumerate(history):
        messages.append({"role": "user", "content": user})
        messages.extend(_chat_message(m) for m in segments.get(number, {}).get("messages", []))
        messages.append({"role": "assistant", "content": assistant})
    user_text = _text(get("instruction"))
    extra = _text(get("input"))
    if extra.strip():
        user_text = f"{user_text}\n\n{extra}"
    messages.append({"role": "user", "content": user_text})
    last = segments.get(len(history), {})
    tool_messages = [_chat_message(m) for m in last.get("messages", [])]
    if last.get("output_is_tool_call"):
        # The answer is the final call itself; ``output`` only repeats it as text.
        messages.extend(tool_messages if include_output else tool_messages[:-1])
        return messages
    messages.extend(tool_messages)
    if include_output:
        messages.append({"role": "assistant", "content": _text(get("output"))})
    return messages


def template_supports_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders tool definitions and tool calls itself."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: transformers picks "tool_use" for tools
        template = template.get("tool_use") or template.get("default")
    return isinstance(template, str) and "tools" in template and "tool_calls" in template


def _call_json(function: Mapping[str, Any]) -> str:
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # a JSON string that did not parse at ingest: keep as is
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    return json.dumps({"name": function["name"], "arguments": arguments}, ensure_ascii=False)


def tool_fallback_messages(
    messages: list[dict[str, Any]], tools: list[Any] | None
) -> list[dict[str, str]]:
    r"""Tool definitions, calls and results as plain system / user / assistant text.

    >>> msgs = [{"role": "user", "content": "Weather?"},
    ...         {"role": "assistant", "content": "", "tool_calls": [
    ...             {"type": "function", "function": {"name": "w", "arguments": {"c": "Oslo"}}}]},
    ...         {"role": "tool", "content": "3C"}, {"role": "assistant", "content": "3C."}]
    >>> [(m["role"], m["content"]) for m in tool_fallback_messages(msgs, None)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('user', 'Weather?'),
     ('assistant', '<tool_call>\n{"name": "w", "arguments": {"c": "Oslo"}}\n</tool_call>'),
     ('user', '<tool_response>\n3C\n</tool_response>'), ('assistant', '3C.')]
    """
    out: list[dict[str, str]] = []
    if tools:
        listed = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        block = TOOLS_PREAMBLE.format(tools=listed)
        if messages and messages[0]["role"] == "system":
            out.append({"role": "system", "content": f"{messages[0]['content']}\n\n{block}"})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": block})
    for message in messages:
        if message["role"] == "tool":
            response = f"<tool_response>\n{message['content']}\n</tool_response>"
            if out and out[-1].get("_tool"):
                out[-1]["content"] += "\n" + response
            else:
                out.append({"role": "user", "content": response, "_tool": "1"})
        elif message.get("tool_calls"):
            calls = "\n".join(
                f"<tool_call>\n{_call_json(c.get('function', c))}\n</tool_call>"
                for c in message["tool_calls"]
            )
            text = message.get("content") or ""
            out.append({"role": "assistant", "content": f"{text}\n{calls}" if text else calls})
        else:
            out.append({"role": message["role"], "content": message["content"]})
    return [{k: v for k, v in m.items() if k != "_tool"} for m in out]


def prepare_messages(
    tokenizer: Any, messages: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The messages and tools to hand to ``apply_chat_template`` for this tokenizer: the
    tools pseudo message is taken out, and tool turns become the fallback's plain text when
    the template does not handle tools."""
    tools = None
    if messages and messages[0]["role"] == TOOLS_ROLE:
        tools = list(messages[0]["tools"]) or None
        messages = messages[1:]
    has_tool_turns = any(m["role"] == "tool" or m.get("tool_calls") for m in messages)
    if not tools and not has_tool_turns:
        return messages, None
    if template_supports_tools(tokenizer):
        return messages, tools
    return tool_fallback_messages(messages, tools), None


def _render(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    add_generation_prompt: bool,
    tools: list[Any] | None = None,
) -> str:
    text = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    if not isinstance(text, str):  # pragma: no cover - tokenize=False always gives a str
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Make a tokenizer ready for chat SFT (in place; idempotent) and return it.

    - No ``chat_template``: set :data:`CHATML_TEMPLATE` and add ``<|im_start|>`` / ``<|im_end|>``
      as special tokens (unless already in the vocabulary).
    - Ensure a pad token with ``pad_token_id`` distinct from ``eos_token_id`` and from the
      end-of-turn token, so masking padding never masks the token the model must learn to emit.
      An existing special token is reused when possible (``<|pad|>``, else ``<|endoftext|>`` /
      the unk token when they are not EOS, as for SmolLM2 whose pad is its EOS ``<|im_end|>``);
      otherwise ``<|pad|>`` is added.

    When tokens were added (``len(tokenizer)`` grew) the model's embeddings must be resized:
    call :func:`resize_embeddings_if_needed`.
    """
    if not getattr(tokenizer, "chat_template", None):
        vocab = tokenizer.get_vocab()
        new = [t for t in (IM_START, IM_END) if t not in vocab]
        if new:
            tokenizer.add_special_tokens({"additional_special_tokens": new})
        tokenizer.chat_template = CHATML_TEMPLATE

    end = turn_end_token(tokenizer)
    taken = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(end)}
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id in taken:
        vocab = tokenizer.get_vocab()
        candidates = [PAD_TOKEN, "<|endoftext|>", tokenizer.unk_token]
        choice = next(
            (c for c in candidates if c and c in vocab and vocab[c] not in taken),
            None,
        )
        if choice is None:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        else:
            tokenizer.pad_token = choice
    return tokenizer


def resize_embeddings_if_needed(model: Any, tokenizer: Any) -> bool:
    """Fit ``model`` to a prepared ``tokenizer``; returns whether the embeddings were resized.

    Grows the input (and tied output) embeddings when the tokenizer has more tokens than the
    embedding matrix (never shrinks: many checkpoints pad their vocabulary), and copies the
    tokenizer's pad id and end-of-turn id into ``model.config`` / ``model.generation_config`` so
    ``generate`` pads with the right token and stops at the end of the assistant turn.
    """
    resized = False
    n_tokens = len(tokenizer)
    if model.get_input_embeddings().weight.shape[0] < n_tokens:
        model.resize_token_embeddings(n_tokens, mean_resizing=True)
        resized = True
    pad_id = tokenizer.pad_token_id
    end_id = tokenizer.convert_tokens_to_ids(turn_end_token(tokenizer))
    stop_ids = [end_id]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id != end_id:
        stop_ids.append(tokenizer.eos_token_id)
    model.config.pad_token_id = pad_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        generation_config.pad_token_id = pad_id
        generation_config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    return resized


def turn_end_token(tokenizer: Any) -> str:
    """The token that closes an assistant turn (``<|im_end|>`` for ChatML).

    Found by rendering a probe conversation and reading the special token that follows the
    assistant's content; falls back to the EOS token. It is what the model is trained to emit
    and what generation stops at.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": _PROBE_CONTENT},
        ]
        rendered = _render(tokenizer, messages, add_generation_prompt=False)
        at = rendered.rfind(_PROBE_CONTENT)
        if at >= 0:
            after = rendered[at + len(_PROBE_CONTENT) :].lstrip()
            specials = sorted(
                {str(t) for t in tokenizer.all_special_tokens} | set(_added_tokens(tokenizer)),
                key=len,
                reverse=True,
            )
            for token in specials:
                if token and after.startswith(token):
                    return token
    if tokenizer.eos_token is None:
        raise ValueError("tokenizer has no chat template end-of-turn token and no EOS token")
    return str(tokenizer.eos_token)


def _added_tokens(tokenizer: Any) -> list[str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return [str(tok.content if hasattr(tok, "content") else tok) for tok in decoder.values()]


@dataclass
class Encoded:
    """A tokenised conversation: ``labels`` is ``IGNORE_INDEX`` except on learned tokens."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def n_learned(self) -> int:
        """How many tokens carry a label (0 means the row teaches nothing)."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _segments(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, bool]]]:
    """Split the rendered conversation into (text, learned) segments that concatenate to it.

    An assistant turn's learned span runs from the end of the generation prompt before it to
    the end of its end-of-turn token (whatever separator follows, e.g. ``\\n``, is not learned).
    """
    messages, tools = prepare_messages(tokenizer, messages)
    full = _render(tokenizer, messages, add_generation_prompt=False, tools=tools)
    end = turn_end_token(tokenizer)
    segments: list[tuple[str, bool]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if i == 0:
            raise ValueError("a conversation cannot start with an assistant turn")
        prefix = _render(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        upto = _render(tokenizer, messages[: i + 1], add_generation_prompt=False, tools=tools)
        if not (full.startswith(prefix) and full.startswith(upto) and upto.startswith(prefix)):
            raise ValueError(
                "the chat template is not prefix-consistent (rendering the first turns is not a "
                "prefix of rendering the whole conversation), so assistant tokens cannot be "
                "located; use a template that renders turns independently"
            )
        if len(prefix) < cursor:  # pragma: no cover - guarded by the prefix checks
            raise ValueError("overlapping assistant turns in the chat template rendering")
        turn = upto[len(prefix) :]
        content = message.get("content") or ""
        content_at = turn.find(content)  # templates may trim or wrap the content
        stop = turn.find(end, content_at + len(content) if content_at >= 0 else 0)
        learned_end = len(prefix) + (stop + len(end) if stop >= 0 else len(turn.rstrip()))
        segments.append((full[cursor : len(prefix)], False))
        segments.append((full[len(prefix) : learned_end], True))
        cursor = learned_end
    segments.append((full[cursor:], False))
    return full, [(text, learned) for text, learned in segments if text]


def encode_conversation(tokenizer: Any, messages: list[dict[str, Any]], max_length: int) -> Encoded:
    """Token ids and labels of the templated conversation, loss on assistant turns only.

    ``labels`` equals ``input_ids`` on every assistant turn's content *and* its end-of-turn token
    (so the model learns to stop) and is ``IGNORE_INDEX`` (-100) elsewhere: system, user,
    role headers, separators, default system prompts injected by the template.

    The text is encoded segment by segment (``add_special_tokens=False``: the template writes
    its own special tokens) and the ids concatenated, so the mask aligns exactly; the ids
    decode to exactly ``tokenizer.apply_chat_template(messages, tokenize=False)`` (including
    the separator after the final end-of-turn token, e.g. ChatML's trailing ``\\n``).

    Longer than ``max_length``: the end is cut off and ``truncated`` is True. If no learned
    token survives, every label is -100 (``Encoded.n_learned == 0``); the caller drops or
    counts such rows.
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    _, segments = _segments(tokenizer, messages)
    input_ids: list[int] = []
    labels: list[int] = []
    for text, learned in segments:
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        input_ids.extend(ids)
        labels.extend(ids if learned else [IGNORE_INDEX] * len(ids))
    truncated = len(input_ids) > max_length
    if truncated:
        input_ids = input_ids[:max_length]
        labels = labels[:max_length]
    return Encoded(input_ids=input_ids, labels=labels, truncated=truncated)


def generation_prompt(tokenizer: Any, messages_without_answer: list[dict[str, Any]]) -> str:
    """The prompt evaluate / serve feed the model: the template with the assistant header added.

    ``messages_without_answer`` ends with the user turn (``row_to_messages(row,
    include_output=False)``). Encode it with ``add_special_tokens=False``.
    """
    if messages_without_answer and messages_without_answer[-1]["role"] == "assistant":
        raise ValueError("generation_prompt expects the conversation without the final answer")
    messages, tools = prepare_messages(tokenizer, messages_without_answer)
    return _render(tokenizer, messages, add_generation_prompt=True, tools=tools)
