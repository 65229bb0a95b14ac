"""One raw record (Alpaca, ShareGPT or OpenAI messages) -> one canonical row, or RowRejected.

Canonical columns (all text): ``row_id`` (content hash), ``source``, ``lang`` (script guess; the
clean stage refines it), ``task``, ``system``, ``history`` (JSON list of earlier
``[user, assistant]`` turns, as in LLaMA-Factory's Alpaca format), ``instruction``, ``input``,
``output``, ``label`` (classification rows only; booleans and numbers as text: ``true``,
``4``), ``tools`` (JSON list of tool definitions, ``[]`` without) and ``tool_turns`` (JSON list,
``[]`` without tool calls: ``{"turn": k, "messages": [...]}`` holds the tool calls and tool
results that come before the assistant text of turn ``k``, where turn ``len(history)`` is the
last one; ``"output_is_tool_call": true`` marks a conversation that ends with a call, whose
``output`` is then the call as JSON text). Tool-call messages are
``{"role": "tool_call", "content": text, "calls": [{"name": ..., "arguments": ...}]}`` and
tool results ``{"role": "observation", "content": text}``.

Accepted records: Alpaca-style objects (field aliases, ``columns`` mapping), ShareGPT
``conversations`` (``from``/``value``; ``function_call`` / ``observation`` turns, ``tools``)
and OpenAI ``messages`` (``role``/``content``; ``tool_calls`` + ``tool`` messages, legacy
``function_call`` + ``function``); ``content`` may be a list of parts, whose text parts are
joined with newlines (any other part quarantines the row: this is text-only SFT).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from json.encoder import encode_basestring  # C: a str as a JSON string, ensure_ascii=False
from typing import Any

from sftops.rowkeys import content_hash
from sftops.text import script_language

CANONICAL_COLUMNS = [
    "row_id",
    "source",
    "lang",
    "task",
    "system",
    "history",
    "instruction",
    "input",
    "output",
    "label",
    "tools",
    "tool_turns",
]
FIELD_ALIASES = {
    "instruction": ("instruction", "prompt", "question", "query"),
    "input": ("input", "context"),
    "output": ("output", "response", "answer", "completion"),
    "system": ("system",),
    "task": ("task", "category"),
    "label": ("label",),
}
USER_ROLES = {"user", "human"}
_encode_json = json.JSONEncoder(ensure_ascii=False).encode  # = json.dumps(x, ensure_ascii=False)
ASSISTANT_ROLES = {"assistant", "gpt", "model", "bot"}
CALL_ROLES = {"function_call", "tool_call", "tool_calls"}
OBSERVATION_ROLES = {"observation", "tool", "function", "ipython", "tool_response"}
NO_TOOLS = "[]"


class RowRejected(ValueError):
    """A record that cannot become a canonical row; the message is the quarantine reason."""


def _text(value: Any, name: str, *, required: bool) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        if required:
            raise RowRejected(f"field '{name}' is missing or null")
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowRejected(f"field '{name}' must be text, got {type(value).__name__}")
    return str(value)  # numbers are common in real data (math answers): keep them as text


def label_text(value: Any) -> str | None:
    """A label as text: KTO-style booleans and ratings are labels too.

    >>> label_text(True), label_text(4), label_text(4.0), label_text(3.5), label_text(None)
    ('true', '4', '4', '3.5', None)
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _text(value, "label", required=False) or None


def _pick(record: dict[str, Any], name: str, columns: dict[str, str]) -> Any:
    if name in columns:
        return record.get(columns[name])
    for alias in FIELD_ALIASES[name]:
        if alias in record:
            return record[alias]
    return None


def content_text(value: Any, where: str, *, required: bool) -> str:
    r"""A turn's content: text, a number, or a list of content parts (text parts joined).

    >>> parts = [{"type": "text", "text": "a"}, {"type": "text", "value": "b"}]
    >>> content_text(parts, "turn 0", required=True)
    'a\nb'
    """
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, dict):
                raise RowRejected(f"{where}: content part is {type(part).__name__}, not an object")
            kind = part.get("type", "text")
            text = part.get("text", part.get("value"))
            if kind != "text":
                raise RowRejected(f"{where}: non-text content part '{kind}' (text-only SFT)")
            if not isinstance(text, str):
                raise RowRejected(f"{where}: text part without a string 'text' or 'value'")
            texts.append(text)
        value = "\n".join(texts)
        if required and not value:
            raise RowRejected(f"field '{where}' is missing or null")
        return value
    return _text(value, where, required=required)


def _json_value(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise RowRejected(f"{what} is not valid JSON") from None


def _calls(value: Any, where: str) -> list[dict[str, Any]]:
    """Tool calls in any of the usual shapes -> ``[{"name": str, "arguments": object}]``."""
    value = _json_value(value, f"{where}: tool call")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise RowRejected(f"{where}: empty tool call")
    calls = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            item = item["function"]  # OpenAI: {"id", "type": "function", "function": {...}}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise RowRejected(f"{where}: a tool call needs a 'name'")
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):  # OpenAI sends arguments as a JSON string
            with contextlib.suppress(ValueError, RecursionError):  # else kept as the string
                arguments = json.loads(arguments) if arguments.strip() else {}
        calls.append({"name": item["name"], "arguments": arguments})
    return calls


def _tools(value: Any) -> str:
    """The ``tools`` field (a list, or a JSON string of one) as canonical JSON text."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return NO_TOOLS
    value = _json_value(value, "field 'tools'")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RowRejected("field 'tools' must be a list of tool definitions")
    tools = [
        t if "function" in t or "name" not in t else {"type": "function", "function": t}
        for t in value
    ]
    return _encode_json(tools) if tools else NO_TOOLS


def _message(turn: Any, number: int, key: str) -> dict[str, Any]:
    """One turn -> a message with role system / user / assistant / tool_call / observation."""
    where = f"turn {number} of '{key}'"
    if not isinstance(turn, dict):
        raise RowRejected(f"{where} is not an object")
    raw_role = turn.get("role", turn.get("from", ""))
    role = raw_role.lower() if isinstance(raw_role, str) else str(raw_role)
    content = turn.get("content", turn.get("value"))
    message: dict[str, Any]
    if role == "system":
        message = {"role": "system", "content": content_text(content, where, required=False)}
    elif role in USER_ROLES:
        message = {"role": "user", "content": content_text(content, where, required=True)}
    elif role in ASSISTANT_ROLES:
        calls = turn.get("tool_calls") or turn.get("function_call")
        if calls:
            text = content_text(content, where, required=False)
            message = {"role": "tool_call", "content": text, "calls": _calls(calls, where)}
        else:
            message = {"role": "assistant", "content": content_text(content, where, required=True)}
    elif role in CALL_ROLES:
        message = {"role": "tool_call", "content": "", "calls": _calls(content, where)}
    elif role in OBSERVATION_ROLES:
        if isinstance(content, dict):  # a structured tool result
            content = _encode_json(content)
        message = {"role": "observation", "content": content_text(content, where, required=False)}
        if isinstance(turn.get("name"), str):
            message["name"] = turn["name"]
    else:
        raise RowRejected(f"{where}: unexpected role '{role}'")
    message["_at"] = (number, role)
    return message


def _unexpected(message: dict[str, Any], key: str) -> RowRejected:
    number, role = message["_at"]
    return RowRejected(f"turn {number} of '{key}': unexpected role '{role}' at this point")


def _turns_to_row(turns: Any, key: str) -> dict[str, str]:
    if not isinstance(turns, list) or not turns:
        raise RowRejected(f"'{key}' must be a non-empty list of turns")
    messages = [_message(turn, number, key) for number, turn in enumerate(turns)]
    system = ""
    if messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
    # Each turn: (user text, tool messages before the answer, answer text, answer is a call).
    done: list[tuple[str, list[dict[str, Any]], str, bool]] = []
    user: str | None = None
    tools: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        last = tools[-1]["role"] if tools else None
        if role == "user" and user is None:
            user = message["content"]
        elif (role == "tool_call" and user is not None and last in (None, "observation")) or (
            role == "observation" and last in ("tool_call", "observation")
        ):
            tools.append(message)
        elif role == "assistant" and user is not None and last in (None, "observation"):
            done.append((user, tools, message["content"], False))
            user, tools = None, []
        else:
            raise _unexpected(message, key)
    if user is not None and tools and tools[-1]["role"] == "tool_call":
        answer = "\n".join(_encode_json(call) for call in tools[-1]["calls"])
        done.append((user, tools, answer, True))
    elif user is not None or not done:
        raise RowRejected(f"'{key}' does not end with an assistant turn")
    tool_turns = []
    for number, (_, used, _, ends_with_call) in enumerate(done):
        if used:
            turn: dict[str, Any] = {
                "turn": number,
                "messages": [{k: v for k, v in m.items() if k != "_at"} for m in used],
            }
            if ends_with_call:
                turn["output_is_tool_call"] = True
            tool_turns.append(turn)
    instruction, _, output, _ = done[-1]
    return {
        "system": system,
        "history": json.dumps([[u, a] for u, _, a, _ in done[:-1]], ensure_ascii=False),
        "instruction": instruction,
        "input": "",
        "output": output,
        "tool_turns": _encode_json(tool_turns) if tool_turns else NO_TOOLS,
    }


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def record_kind(data: Any) -> str:
    """What a raw record looks like: ``sharegpt``, ``openai``, ``alpaca`` or ``other``.

    >>> record_kind({"messages": []}), record_kind({"instruction": "x"}), record_kind([1])
    ('openai', 'alpaca', 'other')
    """
    if not isinstance(data, dict):
        return "other"
    if "conversations" in data:
        return "sharegpt"
    if "messages" in data:
        return "openai"
    return "alpaca"


_PLAIN_KEYS = frozenset({"instruction", "input", "output"})
# content_hash(system, history, ...) of a plain row starts with its empty system and history.
_PLAIN_HASH_PREFIX = '["", "[]", '


def _plain_alpaca_row(data: Any, source: str, max_field_chars: int) -> dict[str, Any] | None:
    """The row ``to_canonical`` makes of the commonest record, an object holding only text
    ``instruction``, ``output`` and maybe ``input`` (no column mapping), without its general
    per-field lookups; None for any other record (or one it would reject), which then takes
    the general path. Millions of such rows make ingest's per-record Python the cost.

    >>> row = _plain_alpaca_row({"instruction": "Hi", "output": "Hello"}, "s", 100)
    >>> row == _canonical_row({"instruction": "Hi", "output": "Hello"}, "s", {}, 100)
    True
    """
    if type(data) is not dict or not data.keys() <= _PLAIN_KEYS:
        return None
    instruction, input_, output = data.get("instruction"), data.get("input", ""), data.get("output")
    if type(instruction) is not str or type(input_) is not str or type(output) is not str:
        return None
    longest = max(len(instruction), len(input_), len(output), len(NO_TOOLS))
    if longest > max_field_chars:
        return None
    text = instruction + " " + input_ + " " + output
    if not text.isascii() and _has_surrogate(text):
        return None
    # = content_hash("", "[]", instruction, input_, output): the JSON list written directly.
    listed = (
        f"{_PLAIN_HASH_PREFIX}{encode_basestring(instruction)}, {encode_basestring(input_)}, "
        f"{encode_basestring(output)}]"
    )
    return {
        "row_id": hashlib.blake2b(listed.encode(), digest_size=8).hexdigest(),
        "source": source,
        "lang": script_language(text),
        "task": "",
        "system": "",
        "history": "[]",
        "instruction": instruction,
        "input": input_,
        "output": output,
        "label": None,
        "tools": NO_TOOLS,
        "tool_turns": NO_TOOLS,
    }


def to_canonical(
    data: Any, source: str, columns: dict[str, str], max_field_chars: int
) -> dict[str, Any]:
    """One raw record (Alpaca, ShareGPT or OpenAI messages) -> a canonical row, or RowRejected."""
    if not columns:
        plain = _plain_alpaca_row(data, source, max_field_chars)
        if plain is not None:
            return plain
    return _canonical_row(data, source, columns, max_field_chars)


def _canonical_row(
    data: Any, source: str, columns: dict[str, str], max_field_chars: int
) -> dict[str, Any]:
    """``to_canonical`` of any record, field by field."""
    if not isinstance(data, dict):
        raise RowRejected(f"record must be an object, got {type(data).__name__}")
    conversation_key = next((k for k in ("conversations", "messages") if k in data), None)
    if conversation_key is not None:
        row = _turns_to_row(data[conversation_key], conversation_key)
    else:
        row = {
            "system": _text(_pick(data, "system", columns), "system", required=False),
            "history": "[]",
            "instruction": _text(_pick(data, "instruction", columns), "instruction", required=True),
            "input": _text(_pick(data, "input", columns), "input", required=False),
            "output": _text(_pick(data, "output", columns), "output", required=True),
            "tool_turns": NO_TOOLS,
        }
    row["tools"] = _tools(data.get(columns.get("tools", "tools")))
    for name in ("system", "history", "instruction", "input", "output", "tools", "tool_turns"):
        if len(row[name]) > max_field_chars:
            raise RowRejected(
                f"field '{name}' has {len(row[name]):,} chars (ingest.max_field_chars="
                f"{max_field_chars:,})"
            )
    row["label"] = label_text(_pick(data, "label", columns))  # type: ignore[assignment]
    row["task"] = _text(_pick(data, "task", columns), "task", required=False)
    for name, value in row.items():
        if value is not None and not value.isascii() and _has_surrogate(value):
            raise RowRejected(f"field '{name}' has an unpaired surrogate (not valid Unicode)")
    row["source"] = source
    parts = [row["system"], row["history"], row["instruction"], row["input"], row["output"]]
    if row["tools"] != NO_TOOLS or row["tool_turns"] != NO_TOOLS:
        parts += [row["tools"], row["tool_turns"]]  # plain rows keep their earlier ids
    row["row_id"] = content_hash(*parts)
    row["lang"] = script_language(row["instruction"] + " " + row["input"] + " " + row["output"])
    return row
