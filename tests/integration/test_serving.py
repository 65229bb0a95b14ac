"""The chat server as a client meets it: a real uvicorn server on a free loopback port, a tiny
random Llama, and a real HTTP client (httpx); plus the terminal chat with scripted input."""

from __future__ import annotations

import inspect
import io
import json
import os
import socket
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sftops.config import GenerationParams, Params
from sftops.errors import SftopsError
from sftops.serving.batching import Job, generate_batch
from sftops.serving.chat import chat_repl
from sftops.serving.engine import ChatEngine, Completion
from sftops.serving.reload import DEFAULT_MAX_BATCH, ModelServer
from sftops.serving.runner import DEFAULT_HOST, BackgroundServer, serve
from sftops.serving.sources import LocalFolderSource, RegistryAliasSource, model_source
from tests.assets.tiny_models import tiny_llama

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("serve-model"))


@pytest.fixture(scope="module")
def running(model_dir: Path) -> Iterator[BackgroundServer]:
    model_server = ModelServer(
        LocalFolderSource(model_dir), poll_seconds=0, params=GenerationParams(max_new_tokens=16)
    )
    with BackgroundServer(model_server) as server:
        yield server


@pytest.fixture(scope="module")
def client(running: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=30) as http:
        yield http


def sse_events(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a Server-Sent Events response, in order."""
    events = []
    for line in response.iter_lines():
        if line:
            assert line.startswith("data: "), line
            events.append(line.removeprefix("data: "))
    return events


# --------------------------------------------------------------------------- happy paths


def test_health_and_loopback_default(running: BackgroundServer, client: httpx.Client) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert body["version"] == running.model_server.engine.version_label
    assert body["version"].startswith("local-")
    assert body["source"] == str(running.model_server.source.describe())
    assert body["context_length"] == 256
    assert body["loaded_at"]
    # bound to loopback unless told otherwise, by every entry point
    assert DEFAULT_HOST == "127.0.0.1"
    assert running.socket.getsockname()[0] == "127.0.0.1"
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(BackgroundServer).parameters["host"].default == "127.0.0.1"
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny-llama"


def test_completion_has_the_openai_shape(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"model": "tiny-llama", "messages": HELLO, "max_tokens": 8, "temperature": 0},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "tiny-llama"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if choice["finish_reason"] == "length":
        assert usage["completion_tokens"] == 8


def test_sampling_parameters_are_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": HELLO, "max_tokens": 4, "temperature": 0.8, "top_p": 0.9, "seed": 7},
    )
    assert response.status_code == 200, response.text
    again = client.post(
        "/v1/chat/completions",
        json={"messages": HELLO, "max_tokens": 4, "temperature": 0.8, "top_p": 0.9, "seed": 7},
    )
    assert again.json()["choices"][0] == response.json()["choices"][0]  # seeded: reproducible


def test_streaming_sends_chunks_then_done(client: httpx.Client) -> None:
    request = {"messages": HELLO, "max_tokens": 12, "temperature": 0}
    whole = client.post("/v1/chat/completions", json=request).json()
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={**request, "stream": True, "stream_options": {"include_usage": True}},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]
    final = chunks[-2]["choices"][0]
    assert final["finish_reason"] == whole["choices"][0]["finish_reason"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text.strip() == whole["choices"][0]["message"]["content"]  # greedy: same answer


def test_abandoned_stream_does_not_block_the_server(client: httpx.Client) -> None:
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": HELLO, "max_tokens": 200, "stream": True}
    ) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    after = client.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 2})
    assert after.status_code == 200


# --------------------------------------------------------------------------- bad input


BAD_REQUESTS: dict[str, bytes | Any] = {
    "not json": b"{messages: oops",
    "not utf-8": b"\xff\xfe\x00",
    "empty body": b"",
    "a list": [HELLO],
    "nested too deep": b"[" * 100_000,
    "missing messages": {"model": "x"},
    "empty messages": {"messages": []},
    "messages not a list": {"messages": "hi"},
    "message not an object": {"messages": ["hi"]},
    "unknown role": {"messages": [{"role": "tool", "content": "x"}]},
    "missing role": {"messages": [{"content": "x"}]},
    "missing content": {"messages": [{"role": "user"}]},
    "non-string content": {"messages": [{"role": "user", "content": 42}]},
    "content parts": {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    "null content": {"messages": [{"role": "user", "content": None}]},
    "ends with assistant": {"messages": [*HELLO, {"role": "assistant", "content": "Paris"}]},
    "negative max_tokens": {"messages": HELLO, "max_tokens": -1},
    "zero max_tokens": {"messages": HELLO, "max_tokens": 0},
    "float max_tokens": {"messages": HELLO, "max_tokens": 2.5},
    "string max_tokens": {"messages": HELLO, "max_tokens": "10"},
    "temperature too high": {"messages": HELLO, "temperature": 5},
    "temperature a string": {"messages": HELLO, "temperature": "hot"},
    "top_p zero": {"messages": HELLO, "top_p": 0},
    "stream not a bool": {"messages": HELLO, "stream": "yes"},
    "n above one": {"messages": HELLO, "n": 3},
    "stop sequences": {"messages": HELLO, "stop": ["\n"]},
    "negative seed": {"messages": HELLO, "seed": -1},
    "huge seed": {"messages": HELLO, "seed": 2**70},
    "model not a string": {"messages": HELLO, "model": 3},
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_malformed_request_is_400_with_json_error(client: httpx.Client, case: str) -> None:
    body = BAD_REQUESTS[case]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(
        "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert isinstance(error["message"], str) and error["message"]


def test_unknown_route_and_method_are_json_errors(client: httpx.Client) -> None:
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = client.get("/v1/chat/completions")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_prompt_longer_than_the_context_is_413(client: httpx.Client) -> None:
    long = [{"role": "user", "content": "the quick brown fox " * 200}]
    for stream in (False, True):
        response = client.post("/v1/chat/completions", json={"messages": long, "stream": stream})
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded"
        assert "256" in error["message"]


def test_prompt_near_the_context_gets_max_tokens_clamped(
    running: BackgroundServer, client: httpx.Client
) -> None:
    engine = running.model_server.engine
    words = 1
    while len(engine.prompt_ids([{"role": "user", "content": "fox " * words}])) < 250:
        words += 1
    messages = [{"role": "user", "content": "fox " * words}]
    response = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 500})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] >= 250
    assert usage["total_tokens"] <= engine.context_length


def test_oversized_body_is_413(client: httpx.Client) -> None:
    content = json.dumps({"messages": [{"role": "user", "content": "x" * 5_000_000}]})
    response = client.post("/v1/chat/completions", content=content)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_a_configured_body_limit_refuses_early_and_accepts_what_fits(
    running: BackgroundServer,
) -> None:
    limit = 600
    small = json.dumps({"messages": HELLO, "max_tokens": 2}).encode()
    big = json.dumps({"messages": [{"role": "user", "content": "x" * limit}]}).encode()
    assert len(small) <= limit < len(big)
    sent: list[int] = []

    def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
        """A body without Content-Length (chunked), far over the limit."""
        for _ in range(0, total, size):
            sent.append(size)
            yield b" " * size

    with (
        BackgroundServer(running.model_server, max_body_bytes=limit) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        accepted = http.post("/v1/chat/completions", content=small)
        declared = http.post("/v1/chat/completions", content=big)
        streamed = http.post("/v1/chat/completions", content=chunked(8 * 1024 * 1024))
        after = http.post("/v1/chat/completions", content=small)  # the connection still serves
        # the answer comes while the client is still sending: the body is not awaited whole
        with socket.create_connection((server.host, server.port), timeout=10) as raw:
            chunk = b"x" * (limit + 1)
            raw.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(chunk):x}\r\n".encode()
                + chunk
                + b"\r\n"
            )
            early = b""  # no terminating chunk is sent: the request body stays unfinished
            while b"}}" not in early and (piece := raw.recv(65536)):
                early += piece
    assert accepted.status_code == 200, accepted.text
    assert after.status_code == 200, after.text
    assert sum(sent) == 8 * 1024 * 1024  # httpx sends it all; the server stops reading it
    for refused in (declared, streamed):
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["code"] == "body_too_large"
        assert error["message"] == f"request body over {limit} bytes"
    assert "chunked" in streamed.request.headers.get("transfer-encoding", "")
    assert early.startswith(b"HTTP/1.1 413 "), early[:200]
    assert b"body_too_large" in early


def test_reading_a_body_stops_at_the_chunk_that_passes_the_limit() -> None:
    import asyncio

    from sftops.serving.errors import RequestError
    from sftops.serving.http import read_body

    pulled: list[int] = []

    async def endless(size: int) -> AsyncIterator[bytes]:
        while True:
            pulled.append(size)
            yield b"x" * size

    with pytest.raises(RequestError) as raised:
        asyncio.run(read_body(endless(30), limit=100))
    assert (raised.value.status, raised.value.code) == (413, "body_too_large")
    assert pulled == [30] * 4  # 120 bytes > 100: nothing read after that chunk

    pulled.clear()
    with pytest.raises(RequestError):
        asyncio.run(read_body(endless(30), limit=100, declared_length="101"))
    assert pulled == []  # refused from Content-Length before any of the body is read

    async def exactly(total: int) -> AsyncIterator[bytes]:
        yield b"x" * (total // 2)
        yield b"x" * (total - total // 2)

    assert asyncio.run(read_body(exactly(100), limit=100, declared_length="100")) == b"x" * 100


def test_the_default_body_limit_is_4_mib(model_dir: Path) -> None:
    from sftops.cli import serve_command
    from sftops.serving.http import DEFAULT_MAX_BODY_BYTES, create_app, parse_chat_request

    assert DEFAULT_MAX_BODY_BYTES == 4 * 1024 * 1024
    for function in (serve, BackgroundServer, create_app, parse_chat_request):
        default = inspect.signature(function).parameters["max_body_bytes"].default
        assert default == DEFAULT_MAX_BODY_BYTES, function
    cli_default = inspect.signature(serve_command).parameters["max_body_bytes"].default
    assert cli_default == DEFAULT_MAX_BODY_BYTES


# --------------------------------------------------------------------------- reloading


class FakeSource:
    """A model source whose version the test moves, like an alias moving in the registry."""

    def __init__(self, folders: dict[str, Path], label: str) -> None:
        self.folders = folders
        self.label = label
        self.fail: str | None = None

    def describe(self) -> str:
        return "models:/tiny@champion"

    def version_label(self) -> str:
        if self.fail:
            raise SftopsError(self.fail)
        return self.label

    def resolve(self) -> tuple[Path, str]:
        return self.folders[self.label], self.label


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_server_reloads_when_the_version_moves(tmp_path: Path, model_dir: Path) -> None:
    folders = {"v1": model_dir, "v2": tiny_llama(tmp_path)}
    source = FakeSource(folders, "v1")
    model_server = ModelServer(source, poll_seconds=0.1)
    with BackgroundServer(model_server) as server, httpx.Client(base_url=server.url) as http:
        first = http.get("/health").json()
        assert first["version"] == "v1" and first["source"] == "models:/tiny@champion"
        assert first["model"] == "tiny"

        source.label = "v2"
        wait_for(lambda: http.get("/health").json()["version"] == "v2")
        health = http.get("/health").json()
        assert health["model_path"] == str(folders["v2"])
        assert health["reloads"] == 1
        assert health["loaded_at"] > first["loaded_at"]
        answer = http.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 3})
        assert answer.status_code == 200
        assert answer.json()["system_fingerprint"] == "v2"

        # the registry becomes unreachable: keep serving v2, say so on /health
        source.fail = "tracking server unreachable"
        wait_for(lambda: http.get("/health").json()["last_poll_error"] is not None)
        assert "unreachable" in http.get("/health").json()["last_poll_error"]
        assert http.post("/v1/chat/completions", json={"messages": HELLO}).status_code == 200
        source.fail = None
        wait_for(lambda: http.get("/health").json()["last_poll_error"] is None)
        assert http.get("/health").json()["version"] == "v2"


def test_local_folder_label_changes_when_the_folder_is_rewritten(model_dir: Path) -> None:
    source = LocalFolderSource(model_dir)
    path, label = source.resolve()
    assert path == model_dir.resolve() and label == source.version_label()
    weights = next(model_dir.glob("*.safetensors"))
    stat = weights.stat()
    try:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert source.version_label() != label
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.version_label() == label


def test_model_source_parsing(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(model_source(model_dir), LocalFolderSource)
    alias = model_source("models:/sft-chat@champion", tmp_path)
    assert isinstance(alias, RegistryAliasSource)
    assert (alias.name, alias.alias) == ("sft-chat", "champion")
    for bad in ("models:/sft-chat", "models:/a/b@champion", "models:/@x"):
        with pytest.raises(SftopsError, match="models:/<name>@<alias>"):
            model_source(bad)
    with pytest.raises(SftopsError, match=r"not a model folder|unknown model"):
        ChatEngine.load(LocalFolderSource(tmp_path))

    # the registry source only talks to sftops.mlops.registry; a stand-in module plays MLflow here
    calls: list[Path] = []

    def download_champion(name: str, dst: Path) -> Path:
        calls.append(Path(dst))
        return model_dir

    fake = types.ModuleType("sftops.mlops.registry")
    fake.champion_version = lambda name: 3  # type: ignore[attr-defined]
    fake.download_champion = download_champion  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sftops.mlops.registry", fake)
    assert alias.version_label() == "sft-chat@champion=v3"
    assert alias.resolve() == (model_dir, "sft-chat@champion=v3")
    assert calls and calls[0].is_relative_to(tmp_path)
    fake.champion_version = lambda name: None  # type: ignore[attr-defined]
    with pytest.raises(SftopsError, match="no version"):
        alias.version_label()
    with pytest.raises(SftopsError, match="champion"):
        RegistryAliasSource("sft-chat", "staging").version_label()


def test_serve_defaults_to_the_registry_champion_and_says_when_it_cannot(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.serving.sources import default_source

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    local = default_source(None, "sft-chat", model_dir, tmp_path)  # an empty registry
    assert isinstance(local, LocalFolderSource)
    assert local.describe() == f"{model_dir} (local folder: no registry champion)"
    explicit = default_source(str(model_dir), "sft-chat", "unused", tmp_path)
    assert isinstance(explicit, LocalFolderSource) and explicit.describe() == str(model_dir)

    fake = types.ModuleType("sftops.mlops.registry")
    fake.champion_version = lambda name: 7  # type: ignore[attr-defined]
    fake.CHAMPION = "champion"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sftops.mlops.registry", fake)
    monkeypatch.setattr("sftops.mlops.registry", fake, raising=False)
    champion = default_source(None, "sft-chat", model_dir, tmp_path)
    assert isinstance(champion, RegistryAliasSource)
    assert champion.describe() == "models:/sft-chat@champion"


# --------------------------------------------------------------------------- terminal chat


def scripted(lines: list[str]) -> Any:
    queue = list(lines)

    def input_fn(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return input_fn


def test_chat_repl_streams_keeps_history_and_resets(model_dir: Path) -> None:
    out = io.StringIO()
    params = GenerationParams(max_new_tokens=6)
    history = chat_repl(
        LocalFolderSource(model_dir),
        params,
        input_fn=scripted(["hello", "and again", "/reset", "", "after the reset", "/exit", "x"]),
        output=out,
        system="Be brief.",
    )
    text = out.getvalue()
    assert text.count("assistant> ") == 3
    assert "(conversation cleared)" in text
    assert [m["role"] for m in history] == ["system", "user", "assistant"]
    assert history[1]["content"] == "after the reset"


def test_chat_repl_drops_old_turns_to_fit_and_ends_on_eof(model_dir: Path) -> None:
    engine = ChatEngine.load(
        LocalFolderSource(model_dir), params=GenerationParams(max_new_tokens=4)
    )
    out = io.StringIO()
    long_turn = "fox " * 30  # ~95 tokens: two turns fit in the 256-token context, three do not
    history = chat_repl(
        engine,
        input_fn=scripted([long_turn, long_turn, long_turn, "fox " * 400]),
        output=out,
    )
    text = out.getvalue()
    assert "dropped the 1 oldest exchange(s)" in text
    assert "error:" in text and "context" in text  # the last message alone is too long
    # the first exchange was dropped; the too-long message left the history as it was
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert text.count("assistant> ") == 3


def test_unexpected_failures_are_json_not_html(
    running: BackgroundServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = running.model_server.engine

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("device fell over")

    monkeypatch.setattr(engine, "complete", boom)
    response = client.post("/v1/chat/completions", json={"messages": HELLO})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"

    # a failure during generation of a stream: reported in-band, then the stream still ends
    # (the model itself fails, so whichever path the stream takes, batched or not, meets it)
    monkeypatch.setattr(engine.model, "generate", boom)
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": HELLO, "stream": True}
    ) as streamed:
        events = sse_events(streamed)
    assert events[-1] == "[DONE]"
    assert any("server_error" in e for e in events[:-1])


# --------------------------------------------------------------------------- batching


VARIED = [
    ("hi", 24),
    ("What is the capital of France?", 24),
    ("fox fox", 10),
    ("你好", 17),
    ("1 + 2", 24),
    ("def add(a, b):", 5),
    ("Summarise the text", 24),
    ("The quick brown fox", 1),
    ("a b c", 24),
    ("Paris " * 30, 24),
]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def varied_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with larger random weights, so greedy answers differ from prompt to
    prompt (the plain one answers newlines to everything), and a scaled ``<|im_end|>``
    embedding, so some answers stop early and others run to their cap."""
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tiny_llama(tmp_path_factory.mktemp("varied-model"))
    model = LlamaForCausalLM.from_pretrained(folder)
    end = PreTrainedTokenizerFast.from_pretrained(folder).convert_tokens_to_ids("<|im_end|>")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 0.3)
        model.model.embed_tokens.weight[end] *= 2.5
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def single_engine(varied_model_dir: Path) -> ChatEngine:
    return ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=1)


@pytest.fixture(scope="module")
def references(single_engine: ChatEngine) -> list[Completion]:
    """Greedy answers one request at a time: what every batched path must reproduce."""
    assert single_engine.batcher is None
    answers = [single_engine.complete(chat(text), max_tokens=cap) for text, cap in VARIED]
    assert len({a.text for a in answers}) == len(answers)  # the answers really differ
    assert {a.finish_reason for a in answers} == {"stop", "length"}  # early stops and caps
    return answers


def test_one_batched_generate_gives_each_request_its_own_greedy_answer(
    varied_model_dir: Path, references: list[Completion]
) -> None:
    from transformers import TextIteratorStreamer

    engine = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=16)
    jobs = []
    for k, (text, cap) in enumerate(VARIED):
        streamer = (
            TextIteratorStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True)
            if k % 2
            else None
        )
        jobs.append(Job(engine._prepare(chat(text), None, max_tokens=cap), streamer=streamer))
    assert len({len(job.prepared.input_ids) for job in jobs}) > 1  # left padding is exercised
    generate_batch(engine, jobs)  # all ten rows in one generate
    for job, reference in zip(jobs, references, strict=True):
        assert job.done.is_set()
        assert engine._summarise(job.prepared, job.result()) == reference
        if job.streamer is not None:  # streamed rows: the pieces make the same answer
            assert "".join(job.streamer).strip() == reference.text


def test_concurrent_requests_through_the_batcher_match_one_at_a_time(
    varied_model_dir: Path, references: list[Completion]
) -> None:
    engine = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=4)
    assert engine.batcher is not None
    results: list[Any] = [None] * len(VARIED)

    def ask(k: int) -> None:
        text, cap = VARIED[k]
        if k % 2:
            stream = engine.stream(chat(text), max_tokens=cap)
            pieces = "".join(stream).strip()
            results[k] = Completion(pieces, stream.usage, stream.finish_reason)  # type: ignore[arg-type]
        else:
            results[k] = engine.complete(chat(text), max_tokens=cap)

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(VARIED))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == references
    assert engine.batcher.batched_requests == len(VARIED)  # every one went through a batch
    assert engine.batcher.batches <= len(VARIED)


def test_batcher_groups_only_requests_that_can_share_a_batch(varied_model_dir: Path) -> None:
    engine = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=3)
    batcher = engine.batcher
    assert batcher is not None
    batcher.wait_seconds = 0
    sample = GenerationParams(strategy="sample")

    def job(cap: int, room: int = 200, params: GenerationParams | None = None) -> Job:
        made = Job(engine._prepare(chat("hi"), params, max_tokens=cap))
        made.room = room
        return made

    # a long prompt leaves room for 4 tokens: a batch generating 8 would run past its context
    jobs = [job(8), job(4), job(8, params=sample), job(4, room=4), job(2), job(3), job(5)]
    batcher._waiting = list(jobs)
    # oldest first; at most max_batch; other settings (sampling) or a cap past a prompt's
    # room wait for a later batch
    assert batcher._take() == [jobs[0], jobs[1], jobs[4]]
    assert batcher._take() == [jobs[2]]
    assert batcher._take() == [jobs[3], jobs[5]]  # caps 4 and 3 fit the room of 4
    assert batcher._take() == [jobs[6]]
    batcher.idle_seconds = 0
    assert batcher._take() is None and batcher._thread is None  # idle: the worker ends


def test_seeded_and_beam_requests_run_on_their_own(varied_model_dir: Path) -> None:
    engine = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=8)
    assert engine.batcher is not None
    sample = GenerationParams(strategy="sample", temperature=0.9)
    beam = GenerationParams(strategy="beam", num_beams=2)
    seeded = engine._prepare(chat("hi"), sample, max_tokens=6, seed=3)
    assert not engine.batcher.accepts(seeded)
    assert not engine.batcher.accepts(engine._prepare(chat("hi"), beam, max_tokens=6))
    assert engine.batcher.accepts(engine._prepare(chat("hi"), sample, max_tokens=6))
    assert engine.batcher.accepts(engine._prepare(chat("hi"), None, max_tokens=6))
    single = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=1)
    for params in (sample, beam):
        ours = engine.complete(chat("fox fox"), params, max_tokens=6, seed=3)
        assert ours == single.complete(chat("fox fox"), params, max_tokens=6, seed=3)
    assert engine.batcher.batched_requests == 0


def test_a_cancelled_row_leaves_its_batch_and_the_others_finish(
    varied_model_dir: Path, references: list[Completion]
) -> None:
    engine = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=4)
    jobs = [Job(engine._prepare(chat(text), None, max_tokens=cap)) for text, cap in VARIED[:3]]
    jobs[1].cancel.set()  # its client went away
    generate_batch(engine, jobs)
    assert jobs[1].done.is_set() and jobs[1].tokens == []
    for k in (0, 2):
        assert engine._summarise(jobs[k].prepared, jobs[k].result()) == references[k]


def test_a_failed_batch_fails_its_requests_and_the_next_batch_runs(
    varied_model_dir: Path, references: list[Completion], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = ChatEngine.load(LocalFolderSource(varied_model_dir), max_batch=4)
    assert engine.batcher is not None

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(engine.model, "generate", boom)
        with pytest.raises(RuntimeError, match="out of memory"):
            engine.complete(chat(VARIED[0][0]), max_tokens=VARIED[0][1])
        stream = engine.stream(chat(VARIED[1][0]), max_tokens=VARIED[1][1])
        with pytest.raises(RuntimeError, match="out of memory"):
            list(stream)
    assert engine.complete(chat(VARIED[0][0]), max_tokens=VARIED[0][1]) == references[0]


def test_http_server_batches_concurrent_clients_with_one_at_a_time_answers(
    varied_model_dir: Path, references: list[Completion]
) -> None:
    model_server = ModelServer(LocalFolderSource(varied_model_dir), poll_seconds=0, max_batch=8)
    answers: list[Any] = [None] * len(VARIED)
    with BackgroundServer(model_server) as server:

        def ask(k: int) -> None:
            text, cap = VARIED[k]
            body = {"messages": chat(text), "max_tokens": cap, "temperature": 0}
            with httpx.Client(base_url=server.url, timeout=120) as http:
                if k % 2 == 0:
                    data = http.post("/v1/chat/completions", json=body).json()
                    answers[k] = (
                        data["choices"][0]["message"]["content"],
                        data["choices"][0]["finish_reason"],
                        data["usage"]["completion_tokens"],
                    )
                    return
                body.update(stream=True, stream_options={"include_usage": True})
                with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    chunks = [json.loads(e) for e in sse_events(response)[:-1]]
                text_out = "".join(
                    c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]
                )
                answers[k] = (
                    text_out.strip(),
                    chunks[-2]["choices"][0]["finish_reason"],
                    chunks[-1]["usage"]["completion_tokens"],
                )

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(VARIED))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        health = httpx.get(server.url + "/health").json()
    expected = [(r.text, r.finish_reason, r.usage.completion_tokens) for r in references]
    assert answers == expected
    assert health["max_batch"] == 8 and health["batched_requests"] == len(VARIED)


def test_serve_command_passes_max_batch(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path
) -> None:
    from typer.testing import CliRunner

    from sftops.cli import app

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("sftops.serving.runner.serve", lambda *a, **k: calls.append(k))
    monkeypatch.chdir(repo_root)
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--model", str(model_dir), "--max-batch", "1"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["max_batch"] == 1
    assert runner.invoke(app, ["serve", "--model", str(model_dir)]).exit_code == 0
    assert calls[-1]["max_batch"] == DEFAULT_MAX_BATCH
    body_limit = ["serve", "--model", str(model_dir), "--max-body-bytes", "1024"]
    assert runner.invoke(app, body_limit).exit_code == 0
    assert calls[-1]["max_body_bytes"] == 1024
    # answers are not cut at evaluation's cap (sized for the test split's short answers)
    assert calls[-1]["params"].max_new_tokens == 256
    assert calls[-1]["params"].strategy == Params().evaluate.generation.strategy
    capped = ["serve", "--model", str(model_dir), "--max-new-tokens", "32"]
    assert runner.invoke(app, capped).exit_code == 0
    assert calls[-1]["params"].max_new_tokens == 32
    assert runner.invoke(app, [*body_limit[:-1], "0"]).exit_code != 0
    assert runner.invoke(app, ["serve", "--model", str(model_dir), "--max-batch", "0"]).exit_code
