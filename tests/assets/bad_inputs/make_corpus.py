"""Write the bad-input corpus (run from the repository root; the files are committed).

    python tests/assets/bad_inputs/make_corpus.py

Each file is small and built from code so that its bytes are documented here; the expected
outcome of ingesting each one is in ``expected.csv`` (driven by tests/unit/test_bad_inputs.py).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
A = {"instruction": "What is the capital of France?", "input": "", "output": "Paris."}
B = {"instruction": "Name a primary colour.", "input": "", "output": "Red."}
ZH = {"instruction": "中国的首都是哪里？", "input": "", "output": "北京。"}
ZH2 = {"instruction": "请把这句话翻译成英文：你好。", "input": "", "output": "Hello."}
FR = {"instruction": "Où est la gare?", "input": "", "output": "À gauche, très près."}
FR2 = {"instruction": "Qu'est-ce que la crème brûlée?", "input": "", "output": "Un dessert."}
CALL = '{"name": "weather", "arguments": {"city": "Oslo"}}'
TOOLS = '[{"name": "weather", "description": "Weather of a city", "parameters": {}}]'


def j(record: object) -> str:
    return json.dumps(record, ensure_ascii=False)


def lines(*records: object, end: str = "\n") -> str:
    return end.join(r if isinstance(r, str) else j(r) for r in records) + end


def sharegpt(*turns: tuple[str, str], **extra: object) -> dict:
    return {"conversations": [{"from": r, "value": v} for r, v in turns], **extra}


def openai(*messages: dict, **extra: object) -> dict:
    return {"messages": list(messages), **extra}


def write(name: str, data: str | bytes, encoding: str = "utf-8") -> None:
    (HERE / name).write_bytes(data if isinstance(data, bytes) else data.encode(encoding))


def main() -> None:
    # --- encodings -------------------------------------------------------------------------
    write("utf8_bom.jsonl", b"\xef\xbb\xbf" + lines(A, B, ZH).encode())
    write("utf16le_bom.jsonl", b"\xff\xfe" + lines(A, ZH).encode("utf-16-le"))
    write("utf16be_bom.jsonl", b"\xfe\xff" + lines(A, ZH).encode("utf-16-be"))
    write("utf16le_no_bom.jsonl", lines(A, ZH), "utf-16-le")
    write("utf32le_bom.jsonl", b"\xff\xfe\x00\x00" + lines(A, ZH).encode("utf-32-le"))
    write("latin1.jsonl", lines(FR, FR2), "latin-1")
    write("gbk.jsonl", lines(ZH, ZH2), "gbk")
    write(
        "mixed_utf8_latin1.jsonl",
        lines(ZH, ZH2).encode() + lines(FR).encode("latin-1") + lines(A).encode(),
    )
    write("utf8_bom.json", b"\xef\xbb\xbf" + j([A, ZH]).encode())
    write("gbk.csv", pd.DataFrame([ZH, ZH2]).to_csv(index=False), "gbk")
    write("utf16_bom.csv", pd.DataFrame([A, ZH]).to_csv(index=False), "utf-16")
    write("utf8_bom.csv", b"\xef\xbb\xbf" + pd.DataFrame([A, B]).to_csv(index=False).encode())
    write(
        "latin1_row_in_utf8.csv",
        "instruction,output\n中国的首都是哪里？,北京。\n".encode()
        + "Où est la gare?,À gauche.\n".encode("latin-1")
        + "你好,Hello.\n".encode(),
    )
    # --- line endings, blank lines, control bytes -------------------------------------------
    write("crlf.jsonl", lines(A, B, ZH, end="\r\n"))
    write("blank_lines.jsonl", "\n   \n" + lines(A) + "\n\t\n" + lines(B) + "\n\n")
    write("nul_bytes.jsonl", lines(A) + '{"instruction": "a\x00b", "output": "c"}\n')
    write("nul_after_sniff.jsonl", lines(*[A] * 90) + '{"instruction": "a\x00", "output": "b"}\n')
    write("control_chars.jsonl", lines(A) + '{"instruction": "tab\there", "output": "x"}\n')
    write("lone_surrogate.jsonl", lines(A) + '{"instruction": "bad \\ud800 text", "output": "x"}\n')
    write("crlf.csv", pd.DataFrame([A, B]).to_csv(index=False, lineterminator="\r\n"))
    # --- truncated / malformed JSON -----------------------------------------------------------
    write("truncated.jsonl", lines(A, B) + j(ZH)[:20])
    write("trailing_garbage.jsonl", lines(A) + j(B) + " trailing\n")
    write("truncated_array.json", j([A, B])[:-10])
    write("html_error_page.json", "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n")
    write("deep_nesting.jsonl", lines(A) + '{"instruction": ' + "[" * 5000 + "]" * 5000 + "}\n")
    write("deep_nesting.json", "[" * 5000 + "]" * 5000)
    write(
        "nan_infinity.jsonl",
        lines(A)
        + '{"instruction": NaN, "output": "x"}\n'
        + '{"instruction": "big", "output": Infinity}\n',
    )
    # --- shapes and types ---------------------------------------------------------------------
    write("empty_objects.jsonl", lines({}, {}, A))
    write("not_objects.jsonl", lines([1, 2], "just text", 42, None, A))
    write(
        "wrong_types.jsonl",
        lines(
            {"instruction": ["a", "b"], "output": "x"},
            {"instruction": {"nested": 1}, "output": "x"},
            {"instruction": "x", "output": True},
            {"instruction": "x", "output": None},
            {"instruction": 12, "output": 3.5},
        ),
    )
    write("duplicate_keys.jsonl", '{"instruction": "a", "instruction": "b", "output": "c"}\n')
    write("big_numbers.jsonl", '{"instruction": 123456789012345678901234567890, "output": 1e400}\n')
    write("huge_line.jsonl", lines(A, {"instruction": "long", "output": "y" * 20_000}))
    write("empty.jsonl", b"")
    write("binary.jsonl", bytes(range(256)) * 4)
    write("empty_array.json", "[]")
    write("array_of_mixed.json", j([A, 1, "text", None, [A]]))
    write("wrapped_object.json", json.dumps({"version": 1, "data": [A, B]}, indent=2))
    write("wrapped_object_field.json", json.dumps({"version": 1, "data": [A, B]}, indent=2))
    write("wrapped_one_line.jsonl", j({"meta": {"rows": [A, B]}}) + "\n")
    write("object_without_list.json", json.dumps({"name": "not data", "size": 3}, indent=2))
    write("gzipped.jsonl.gz", gzip.compress(lines(A, B).encode(), mtime=0))
    # --- conversations, content parts, tools, labels ----------------------------------------
    write(
        "conversations_array.json",
        j(
            [
                sharegpt(("human", "Hi"), ("gpt", "Hello!")),
                sharegpt(("human", "2+2?"), ("gpt", "4")),
            ]
        ),
    )
    write(
        "unknown_roles.jsonl",
        lines(
            sharegpt(("human", "Hi"), ("narrator", "Meanwhile"), ("gpt", "Hello")),
            sharegpt(("human", "Hi"), ("human", "Again"), ("gpt", "Hello")),
            sharegpt(("human", "No answer")),
            sharegpt(("system", "Sys"), ("human", "Hi"), ("gpt", "Hello")),
            {"conversations": []},
            {"conversations": "not a list"},
        ),
    )
    write(
        "content_parts.jsonl",
        lines(
            openai(
                {"role": "user", "content": [{"type": "text", "text": "Describe"}, "briefly"]},
                {"role": "assistant", "content": [{"type": "text", "text": "Short."}]},
            ),
            sharegpt(("human", [{"type": "text", "value": "Hi"}]), ("gpt", "Hello")),
            openai(
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": "A cat."},
            ),
            openai(
                {"role": "user", "content": [{"type": "text"}]},
                {"role": "assistant", "content": "?"},
            ),
        ),
    )
    write(
        "tools_sharegpt.jsonl",
        lines(
            sharegpt(
                ("human", "Weather in Oslo?"),
                ("function_call", CALL),
                ("observation", "3C"),
                ("gpt", "It is 3C."),
                tools=TOOLS,
            ),
            sharegpt(("human", "Weather in Oslo?"), ("function_call", CALL), tools=TOOLS),
            sharegpt(
                ("human", "Weather?"),
                ("function_call", "weather(Oslo)"),
                ("observation", "3C"),
                ("gpt", "3C."),
            ),
            sharegpt(("human", "Hi"), ("gpt", "Hello"), tools="not json"),
        ),
    )
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
    }
    write(
        "tools_openai.jsonl",
        lines(
            openai(
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": None, "tool_calls": [call, call]},
                {"role": "tool", "tool_call_id": "c1", "content": "3C"},
                {"role": "tool", "tool_call_id": "c1", "content": "3C"},
                {"role": "assistant", "content": "3C in both."},
                tools=[{"type": "function", "function": {"name": "weather"}}],
            ),
            openai(
                {"role": "user", "content": "Hi"},
                {"role": "tool", "content": "orphan result"},
                {"role": "assistant", "content": "Hello"},
            ),
            openai(
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]},
            ),
        ),
    )
    write(
        "labels.jsonl",
        lines(
            *(
                {"instruction": "Is it good?", "output": f"Rating {v}", "label": v}
                for v in (True, False, 4, 4.5, "positive", None)
            )
        ),
    )
    # --- CSV --------------------------------------------------------------------------------
    write(
        "quoted_newlines.csv",
        'instruction,output\n"Line one\nline two","Answer, with comma"\n"Q2","A ""quoted"" word"\n',
    )
    write("missing_output_column.csv", "instruction,notes\nQ1,n1\nQ2,n2\n")
    write("ragged.csv", "instruction,output\nQ1,A1\nQ2,A2,extra\nQ3\nQ4,A4\n")
    write("unterminated_quote.csv", 'instruction,output\nQ1,A1\n"Q2,A2\nQ3,A3\n')
    write("header_only.csv", "instruction,output\n")
    write("blank_header.csv", "\n\ninstruction,output\nQ1,A1\n")
    write("rows.tsv", "instruction\toutput\nQ1\tA1\nQ2\tA2\n")
    # --- Parquet -----------------------------------------------------------------------------
    pd.DataFrame({"instruction": [1, 2], "output": [1.5, float("nan")]}).to_parquet(
        HERE / "numeric_columns.parquet"
    )
    pd.DataFrame({"instruction": ["Q1", "Q2"], "output": [["a", "b"], ["c"]]}).to_parquet(
        HERE / "list_column.parquet"
    )
    pd.DataFrame({"instruction": ["Q1"], "output": [b"\x00bytes"]}).to_parquet(
        HERE / "bytes_column.parquet"
    )
    pd.DataFrame(
        {"conversations": [[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hey"}]]}
    ).to_parquet(HERE / "conversations.parquet")
    write("corrupt.parquet", b"PAR1" + b"\x00garbage" * 10 + b"PAR1")


if __name__ == "__main__":
    main()
