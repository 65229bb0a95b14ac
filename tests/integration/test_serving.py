"""The chat server as a client meets it: a real uvicorn server on a free loopback port, a tiny
random Llama, and a real HTTP client (httpx); plus the terminal chat with scripted input."""

from __future__ import annotations

import inspect
import io
import json
import os
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sftops.config import GenerationParams
from sftops.errors import SftopsError
from sftops.serving import (
    DEFAULT_HOST,
    BackgroundServer,
    ChatEngine,
    LocalFolderSource,
    ModelServer,
    RegistryAliasSource,
    chat_repl,
    model_source,
    serve,
)
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

    # the registry source only talks to sftops.registry; a stand-in module plays MLflow here
    calls: list[Path] = []

    def download_champion(name: str, dst: Path) -> Path:
        calls.append(Path(dst))
        return model_dir

    fake = types.ModuleType("sftops.registry")
    fake.champion_version = lambda name: 3  # type: ignore[attr-defined]
    fake.download_champion = download_champion  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sftops.registry", fake)
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
    from sftops.serving import default_source

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    local = default_source(None, "sft-chat", model_dir, tmp_path)  # an empty registry
    assert isinstance(local, LocalFolderSource)
    assert local.describe() == f"{model_dir} (local folder: no registry champion)"
    explicit = default_source(str(model_dir), "sft-chat", "unused", tmp_path)
    assert isinstance(explicit, LocalFolderSource) and explicit.describe() == str(model_dir)

    fake = types.ModuleType("sftops.registry")
    fake.champion_version = lambda name: 7  # type: ignore[attr-defined]
    fake.CHAMPION = "champion"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sftops.registry", fake)
    monkeypatch.setattr("sftops.registry", fake, raising=False)
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
    monkeypatch.setattr(engine, "_generate_ids", boom)
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": HELLO, "stream": True}
    ) as streamed:
        events = sse_events(streamed)
    assert events[-1] == "[DONE]"
    assert any("server_error" in e for e in events[:-1])
