"""The HTTP API (:func:`create_app`, FastAPI; :mod:`sftops.serving.runner` runs it with uvicorn,
bound to ``127.0.0.1`` unless told otherwise):

- ``GET /health``: ``status``, ``source``, ``version``, ``loaded_at``, ``model_path``,
  ``context_length``, the last poll's time and error (if any), ``reloads``, ``max_batch`` and
  the batcher's counts (``batches``, ``batched_requests``).
- ``GET /v1/models``: the one served model, OpenAI list shape.
- ``POST /v1/chat/completions``: OpenAI chat completions. Request: ``model`` (optional; one
  model is served, the response names it), ``messages`` [{``role``: system|user|assistant,
  ``content``: string}] ending with a non-assistant turn, optional ``max_tokens`` (integer
  >= 1), ``temperature`` (0-2; 0 = greedy, > 0 = sampling), ``top_p`` (0-1], ``seed``,
  ``stream``, ``stream_options.include_usage``. Response: ``id``, ``object:
  "chat.completion"``, ``created``, ``model``, ``system_fingerprint`` (the version label),
  ``choices[0].message.{role, content}``, ``choices[0].finish_reason`` ("stop" at the
  end-of-turn token, "length" at the token cap), ``usage``. With ``stream: true`` the answer
  comes as Server-Sent Events, ``data: {chat.completion.chunk}`` lines (the first carries the
  role, the last the finish reason) ended by ``data: [DONE]``. Beam search cannot stream: a
  streamed request with a beam-search default decodes greedily.

Errors are JSON, ``{"error": {"message", "type", "code"}}``, never an HTML page:

- malformed requests (bad JSON, not an object, missing / empty ``messages``, unknown role,
  non-string content, a conversation ending with the assistant, ``max_tokens`` < 1, out-of-range
  ``temperature`` / ``top_p``, ``n`` != 1, ``stop`` sequences) -> **400**
  ``invalid_request_error``;
- **over-long prompts -> 413** (code ``context_length_exceeded``) when the rendered prompt
  alone fills the model's context (``prompt_tokens >= context_length``): the prompt is never
  silently truncated, since cutting a conversation changes what is being asked. A prompt that
  fits but leaves less room than ``max_tokens`` is answered with ``max_tokens`` clamped to the
  room left (``finish_reason`` "length" if the answer hits it). A body over the configured
  limit (``sftops serve --max-body-bytes``, default :data:`DEFAULT_MAX_BODY_BYTES`) is 413
  ``body_too_large``, refused from its ``Content-Length`` before any of it is read, or, sent
  without one (chunked), as soon as the bytes read pass the limit;
- anything unexpected -> 500 ``server_error`` with a JSON body (and a logged traceback).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from sftops.config import GenerationParams
from sftops.serving.engine import Completion, TokenStream
from sftops.serving.errors import RequestError, error_payload
from sftops.serving.reload import ModelServer

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Request bodies larger than this are refused with 413 before parsing, unless configured."""
WORKER_THREADS = 256
"""Threads for blocking calls (a request waiting for its batch, a stream for its next piece).
AnyIO's default of 40 would hold back the 41st concurrent client before it even joins a batch."""

Role = Literal["system", "user", "assistant"]


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: StrictStr
    name: StrictStr | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """The accepted part of an OpenAI chat-completions request (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = None
    messages: list[_ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat | None = Field(None, ge=0, le=2)
    top_p: StrictFloat | None = Field(None, gt=0, le=1)
    seed: StrictInt | None = Field(None, ge=0, le=2**63 - 1)
    n: StrictInt | None = None
    stop: Any = None
    stream: StrictBool = False
    stream_options: _StreamOptions | None = None

    def generation_params(self, base: GenerationParams) -> GenerationParams:
        update: dict[str, Any] = {}
        if self.temperature is not None:
            if self.temperature == 0:
                update["strategy"] = "greedy"
            else:
                update.update(strategy="sample", temperature=float(self.temperature))
        if self.top_p is not None:
            update["top_p"] = float(self.top_p)
        return base.model_copy(update=update) if update else base

    @property
    def token_cap(self) -> int | None:
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens


def body_too_large(limit: int) -> RequestError:
    return RequestError(f"request body over {limit} bytes", status=413, code="body_too_large")


async def read_body(
    chunks: AsyncIterable[bytes], limit: int, declared_length: str | None = None
) -> bytes:
    """The request body from ``chunks``, refused (413) as early as the size shows it is over
    ``limit``: a ``Content-Length`` over it before anything is read, and a body without one
    (chunked) at the first chunk that takes it past the limit, so at most ``limit`` bytes plus
    one chunk are ever held. The rest is not read here (uvicorn discards it). The connection is
    kept, not closed: closing it with the client's bytes still unread makes the kernel reset it,
    and the client then loses the 413 itself (seen with a 5 MB body)."""
    if declared_length and declared_length.isdigit() and int(declared_length) > limit:
        raise body_too_large(limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise body_too_large(limit)
    return bytes(body)


def parse_chat_request(
    body: bytes, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> ChatCompletionRequest:
    """Validate a request body; every problem is a :class:`RequestError` (400 / 413)."""
    if len(body) > max_body_bytes:
        raise body_too_large(max_body_bytes)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    except RecursionError as exc:
        raise RequestError("the body's JSON is nested too deeply", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise RequestError(
            f"the body must be a JSON object, not {type(data).__name__}", code="invalid_json"
        )
    if "messages" not in data:
        raise RequestError("'messages' is required", param="messages")
    if data.get("n") not in (None, 1):
        raise RequestError("only n=1 is supported (one answer per request)", param="n")
    if data.get("stop") not in (None, "", []):
        raise RequestError(
            "stop sequences are not supported (answers stop at the end-of-turn token)",
            param="stop",
        )
    try:
        return ChatCompletionRequest.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise RequestError(f"invalid request: {problems}", param=where or None) from exc


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def create_app(server: ModelServer, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI application over ``server`` (see the module docstring for the API); request
    bodies over ``max_body_bytes`` are refused with 413."""
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, not {max_body_bytes}")
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="sftops chat server", docs_url=None, redoc_url=None, openapi_url=None)

    def error_response(err: RequestError) -> JSONResponse:
        return JSONResponse(err.payload(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            error_payload(f"{request.method} {request.url.path}: {exc.detail}", kind),
            status_code=exc.status_code,
        )

    def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            error_payload(f"internal error: {type(exc).__name__}: {exc}", "server_error"),
            status_code=500,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error(request, exc)  # the backstop for errors outside the handlers

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return server.health()

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        engine = server.engine
        return {
            "object": "list",
            "data": [
                {
                    "id": server.served_model_name,
                    "object": "model",
                    "created": int(engine.loaded_at.timestamp()),
                    "owned_by": "sftops",
                    "version": engine.version_label,
                }
            ],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        import anyio.to_thread

        limiter = anyio.to_thread.current_default_thread_limiter()  # one per event loop
        limiter.total_tokens = max(limiter.total_tokens, WORKER_THREADS)
        try:
            body = await read_body(
                request.stream(), max_body_bytes, request.headers.get("content-length")
            )
            req = parse_chat_request(body, max_body_bytes)
            engine = server.engine  # this request stays on this engine even if a reload swaps
            params = req.generation_params(engine.params)
            messages = [{"role": m.role, "content": m.content} for m in req.messages]
            result: Completion | TokenStream
            if req.stream:
                result = await run_in_threadpool(
                    engine.stream, messages, params, max_tokens=req.token_cap, seed=req.seed
                )
            else:
                result = await run_in_threadpool(
                    engine.complete, messages, params, max_tokens=req.token_cap, seed=req.seed
                )
        except RequestError as err:
            return error_response(err)
        except Exception as exc:  # answered here: a re-raised error would reset the connection
            return internal_error(request, exc)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": server.served_model_name,
            "system_fingerprint": engine.version_label,
        }
        if isinstance(result, Completion):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": result.text},
                            "logprobs": None,
                            "finish_reason": result.finish_reason,
                        }
                    ],
                    "usage": result.usage.as_dict(),
                }
            )
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            _sse_events(result, base, include_usage, run_in_threadpool),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


async def _sse_events(
    stream: TokenStream,
    base: dict[str, Any],
    include_usage: bool,
    run_in_threadpool: Callable[..., Any],
) -> AsyncIterator[bytes]:
    """``data: {chunk}`` events for a :class:`TokenStream`, then ``data: [DONE]``."""
    chunk = {**base, "object": "chat.completion.chunk"}

    def event(delta: dict[str, str], finish: str | None) -> bytes:
        return _sse({**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    done = object()
    try:
        yield event({"role": "assistant", "content": ""}, None)
        while True:
            piece = await run_in_threadpool(next, stream, done)
            if piece is done:
                break
            yield event({"content": piece}, None)
        yield event({}, stream.finish_reason or "stop")
        if include_usage and stream.usage is not None:
            yield _sse({**chunk, "choices": [], "usage": stream.usage.as_dict()})
    except Exception as exc:  # the status line is gone: report in-band, then end the stream
        log.exception("streaming failed")
        yield _sse(error_payload(f"internal error: {type(exc).__name__}: {exc}", "server_error"))
    finally:
        stream.close()
    yield _sse("[DONE]")
