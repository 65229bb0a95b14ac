"""PII inside tool calling (tool definitions, call arguments, observations) is scrubbed by the
clean stage like the text fields: it reaches neither the cleaned table nor the training text."""

from __future__ import annotations

import json

import pandas as pd

from sftops.config import CleanParams
from sftops.data.clean import clean_table
from sftops.data.pii import scrub_json_column
from sftops.modeling.formatting import row_to_messages
from tests.helpers import canonical_table

EMAIL = "jane.doe@example.com"
PHONE = "13812345678"
API_KEY = "sk-proj-FAKEkeyNOTREAL0123456789abcdefXYZ"
OBS_EMAIL = "ops-team@corp.example.org"
PLANTED = (EMAIL, PHONE, API_KEY, OBS_EMAIL)

TOOL_ROW = {
    "messages": [
        {"role": "system", "content": "You can send messages with the tools."},
        {"role": "user", "content": "Please tell the operations team that the backup finished."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {
                        "name": "send_message",
                        # Arguments as the OpenAI format has them: JSON inside a string.
                        "arguments": json.dumps(
                            {"to": EMAIL, "sms": PHONE, "auth": API_KEY, "text": "backup done"}
                        ),
                    },
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "a",
            "content": f"delivered to {OBS_EMAIL} and\n{PHONE}",
        },
        {"role": "assistant", "content": "Done: the operations team has been told."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "send_message",
                "description": f"Send a message (support: {EMAIL}).",
                "parameters": {"type": "object"},
            },
        }
    ],
}
PLAIN_ROW = {
    "instruction": "Write one sentence about the sea.",
    "input": "",
    "output": "The sea is wide, deep and always moving.",
}


def everything(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", force_ascii=False)


def test_pii_in_tool_arguments_observations_and_definitions_is_scrubbed() -> None:
    table = canonical_table([TOOL_ROW, PLAIN_ROW])
    assert all(secret in everything(table) for secret in (EMAIL, API_KEY, OBS_EMAIL))

    result = clean_table(table, CleanParams())

    assert len(result.kept) == 2, result.quarantine[["reason", "detail"]]
    text = everything(result.kept) + everything(result.quarantine)
    for secret in PLANTED:
        assert secret not in text
    row = result.kept.set_index("instruction").loc[TOOL_ROW["messages"][1]["content"]]
    (segment,) = json.loads(row["tool_turns"])
    call, observation = segment["messages"]
    assert call["calls"][0]["arguments"] == {
        "to": "[EMAIL]",
        "sms": "[PHONE]",
        "auth": "[API_KEY]",
        "text": "backup done",
    }
    assert observation["content"] == "delivered to [EMAIL] and\n[PHONE]"
    tools = json.loads(row["tools"])
    assert tools[0]["function"]["description"] == "Send a message (support: [EMAIL])."
    assert result.modified["pii_email"] >= 3 and result.modified["pii_api_key"] == 1

    # The training text is built from these columns: no planted value in it either.
    messages = json.dumps(row_to_messages(row.to_dict()), ensure_ascii=False)
    assert "[EMAIL]" in messages and not any(secret in messages for secret in PLANTED)

    # The plain row and rows without PII keep their bytes.
    plain = result.kept.set_index("instruction").loc[PLAIN_ROW["instruction"]]
    assert (plain["tools"], plain["tool_turns"]) == ("[]", "[]")


def test_without_scrubbing_the_planted_values_stay() -> None:
    """The control: the scrub is what removes them (so the test above can fail)."""
    result = clean_table(canonical_table([TOOL_ROW]), CleanParams(scrub_pii=False))
    assert API_KEY in everything(result.kept) and OBS_EMAIL in everything(result.kept)


def test_json_texts_without_pii_keep_their_bytes_and_broken_json_is_scrubbed_as_text() -> None:
    clean = '[{"name": "w", "arguments": {"city": "Oslo"}}]'
    texts, found = scrub_json_column([clean, "[]", f"not json {EMAIL}"])
    assert texts == [clean, "[]", "not json [EMAIL]"]
    assert found == [(2, {"email": 1})]
    keyed = json.dumps({EMAIL: {"name": "Jane"}})
    assert scrub_json_column([keyed])[0] == ['{"[EMAIL]": {"name": "Jane"}}']
