"""Serve a chat model: an OpenAI-compatible HTTP server and an interactive terminal chat.

Where the model comes from is a :class:`ModelSource`: ``resolve()`` gives a local model folder
and a *version label*; ``version_label()`` is the cheap check polled to notice a new version.

- :class:`LocalFolderSource`: a model folder (or anything
  :func:`sftops.modeling.models.resolve_model_path` accepts: a built-in name, a ``.gguf`` file).
  Its label is a fingerprint of the folder's config and weight files, so re-saving the folder
  counts as a new version.
- :class:`RegistryAliasSource`: ``models:/<name>@champion`` in the MLflow registry, through
  ``sftops.mlops.registry`` (imported lazily: ``champion_version`` / ``download_champion``).
  The label   names the version the alias points at, so moving the alias is noticed by the poller.

:func:`model_source` turns the command-line spelling (a path or ``models:/<name>@<alias>``)
into a source.

:class:`ChatEngine` holds one loaded tokenizer + model and a lock (one ``generate`` at a time).
With ``max_batch`` > 1 (the server's default, ``sftops serve --max-batch``) a
:class:`DynamicBatcher` runs concurrent greedy / unseeded sampling requests, streamed or not, as
one left-padded batched ``generate``; each row stops on its own and greedy answers are the same
as one request at a time. Batching is static: a request arriving while a batch runs waits for
the next one. Prompts are rendered with the tokenizer's chat template through
:func:`sftops.modeling.formatting.generation_prompt`, the very text training and evaluation
use, and generation stops at the end-of-turn token
(:func:`sftops.modeling.generate.stop_token_ids`).

HTTP API (:func:`create_app`, FastAPI; :func:`serve` runs it with uvicorn, bound to
``127.0.0.1`` unless told otherwise):

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
  room left (``finish_reason`` "length" if the answer hits it). A body over
  :data:`MAX_BODY_BYTES` is also 413;
- anything unexpected -> 500 ``server_error`` with a JSON body (and a logged traceback).

**Reloading**: :class:`ModelServer` polls ``source.version_label()`` every ``poll_seconds`` in a
background thread; when it changes, the new version is loaded *beside* the old one and swapped
in with one assignment, so requests in flight finish on the engine they started with and no
request sees a half-loaded model. A failed poll or load is logged and shown on ``/health``
(``last_poll_error``); the old version keeps serving and the next poll retries.

:func:`chat_repl` is the terminal chat: streamed tokens, multi-turn history, ``/reset`` and
``/exit``; when the history outgrows the context the oldest turns are dropped (and it says so).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from sftops.config import GenerationParams
from sftops.errors import SftopsError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
"""Loopback only: exposing the server is an explicit ``--host 0.0.0.0``."""
DEFAULT_PORT = 8000
DEFAULT_POLL_SECONDS = 30.0
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Request bodies larger than this are refused with 413 before parsing."""
DEFAULT_MAX_BATCH = 32
"""Concurrent requests the server generates for in one batch (1: one request at a time)."""
DEFAULT_BATCH_WAIT_MS = 5.0
"""How long an idle batcher waits for company before generating for a lone request."""
WORKER_THREADS = 256
"""Threads for blocking calls (a request waiting for its batch, a stream for its next piece).
AnyIO's default of 40 would hold back the 41st concurrent client before it even joins a batch."""
DEFAULT_CACHE_DIR = ".cache/sftops"

Role = Literal["system", "user", "assistant"]
Message = dict[str, str]
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[A-Za-z0-9_-]+)$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


# ----------------------------------------------------------------------------- errors


class RequestError(SftopsError):
    """A request the server refuses; ``status`` is the HTTP status, ``code`` the error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param

    def payload(self) -> dict[str, Any]:
        return error_payload(self.message, self.error_type, self.code, self.param)


class PromptTooLong(RequestError):
    """The rendered prompt alone fills the model's context (HTTP 413)."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(
            f"the prompt is {prompt_tokens} tokens but the model's context is {context_length} "
            "tokens (the prompt and the answer must fit in it); shorten the conversation",
            status=413,
            code="context_length_exceeded",
            param="messages",
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


def error_payload(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


# ----------------------------------------------------------------------------- sources


@runtime_checkable
class ModelSource(Protocol):
    """Where a served model comes from."""

    def describe(self) -> str:
        """What to show on /health, e.g. ``models:/sft@champion`` or a folder path."""
        ...

    def version_label(self) -> str:
        """A cheap label of the current version (polled; a change triggers a reload)."""
        ...

    def resolve(self) -> tuple[Path, str]:
        """A local model folder of the current version and that version's label."""
        ...


def _folder_fingerprint(folder: Path) -> str:
    """A short hash of the names, sizes and mtimes of the config and weight files."""
    digest = hashlib.sha256()
    files = [folder / "config.json", *sorted(folder.iterdir())] if folder.is_dir() else [folder]
    for path in files:
        if path.is_file() and (path.name == "config.json" or path.suffix in _WEIGHT_SUFFIXES):
            stat = path.stat()
            digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


@dataclass
class LocalFolderSource:
    """A local model folder (or built-in name / ``.gguf`` file, see ``resolve_model_path``)."""

    path: str | Path
    cache_dir: str | Path = DEFAULT_CACHE_DIR
    note: str = ""  # why this folder is served, shown on /health

    def describe(self) -> str:
        return f"{self.path} ({self.note})" if self.note else str(self.path)

    def _folder(self) -> Path:
        from sftops.modeling.models import resolve_model_path

        return resolve_model_path(str(self.path), self.cache_dir)

    def version_label(self) -> str:
        folder = Path(self.path).expanduser()
        if not folder.exists():  # a built-in name: its cached folder never changes
            folder = self._folder()
        return f"local-{_folder_fingerprint(folder)}"

    def resolve(self) -> tuple[Path, str]:
        folder = self._folder()
        return folder, f"local-{_folder_fingerprint(folder)}"


@dataclass
class RegistryAliasSource:
    """A registered model version behind an MLflow alias, ``models:/<name>@<alias>``.

    Uses ``sftops.mlops.registry.champion_version(name)`` and ``download_champion(name, dst)``
    (imported when first needed, so serving a local folder never touches MLflow). Only the
    ``champion`` alias is provided by the registry module. Downloads go to
    ``<cache_dir>/serving/<name>/<label>/`` and are reused.
    """

    name: str
    alias: str = "champion"
    cache_dir: str | Path = DEFAULT_CACHE_DIR

    def describe(self) -> str:
        return f"models:/{self.name}@{self.alias}"

    def _registry(self) -> Any:
        if self.alias != "champion":
            raise SftopsError(
                f"only the 'champion' alias can be served (got '{self.alias}')",
                key=self.describe(),
            )
        from importlib import import_module

        return import_module("sftops.mlops.registry")

    def _label(self, registry: Any) -> str:
        version = registry.champion_version(self.name)
        if version is None:
            raise SftopsError("no version has the alias yet", key=self.describe())
        number = getattr(version, "version", version)  # a number or an MLflow ModelVersion
        return f"{self.name}@{self.alias}=v{number}"

    def version_label(self) -> str:
        return self._label(self._registry())

    def resolve(self) -> tuple[Path, str]:
        registry = self._registry()
        for _ in range(3):  # the alias may move during the download: retry until it holds still
            label = self._label(registry)
            dst = Path(self.cache_dir) / "serving" / self.name / re.sub(r"[^\w.=-]", "_", label)
            path = dst if (dst / "config.json").is_file() else None
            if path is None:
                got = registry.download_champion(self.name, dst)
                if got is None:
                    raise SftopsError("no version has the alias yet", key=self.describe())
                path = Path(got)
            if self._label(registry) == label:
                return path, label
        raise SftopsError("the alias kept moving while downloading", key=self.describe())


def model_source(spec: str | Path, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> ModelSource:
    """``models:/<name>@<alias>`` -> :class:`RegistryAliasSource`; anything else is local."""
    text = str(spec).strip()
    if text.startswith("models:/"):
        match = _MODELS_URI.match(text)
        if match is None:
            raise SftopsError(
                f"cannot serve '{text}': use models:/<name>@<alias> (e.g. models:/sft@champion)"
            )
        return RegistryAliasSource(match["name"], match["alias"], cache_dir)
    return LocalFolderSource(text, cache_dir)


def default_source(
    model: str | None, name: str, model_dir: str | Path, cache_dir: str | Path
) -> ModelSource:
    """What `sftops serve` / `chat` serve: ``model`` when given; else the registry's
    ``champion`` of ``name``; else (no registry or no champion yet) the local ``model_dir``,
    flagged as such on /health, never silently an unpromoted run's output."""
    if model:
        return model_source(model, cache_dir)
    from sftops.mlops import registry

    try:
        champion = registry.champion_version(name)
    except SftopsError as err:  # a tracking server that does not answer
        log.warning("registry unavailable (%s)", err)
        champion = None
    if champion is not None:
        return RegistryAliasSource(name, registry.CHAMPION, cache_dir)
    log.warning("no %s@champion in the registry: serving the local folder %s", name, model_dir)
    return LocalFolderSource(model_dir, cache_dir, note="local folder: no registry champion")


# ----------------------------------------------------------------------------- engine


class Usage(NamedTuple):
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


class Completion(NamedTuple):
    """A finished answer: its text, token counts and why it ended ("stop" / "length")."""

    text: str
    usage: Usage
    finish_reason: str


@dataclass
class _Prepared:
    input_ids: list[int]
    kwargs: dict[str, Any]
    seed: int | None


@dataclass(eq=False)
class _Job:
    """One request waiting for (or riding in) a batch: its new token ids arrive in ``tokens``.

    ``streamer`` (a ``TextIteratorStreamer``) is fed this row's tokens as they come; ``cancel``
    drops the row from its batch at the next step; ``done`` is set once the row ended (its
    stop token, its own token cap, a cancel, or an error in ``error``).
    """

    prepared: _Prepared
    streamer: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)
    error: BaseException | None = None
    room: int = 0  # context length minus prompt length, set on submit

    @property
    def cap(self) -> int:
        return int(self.prepared.kwargs["max_new_tokens"])

    def finish(self, error: BaseException | None = None) -> None:
        if self.done.is_set():
            return
        self.error = error
        if self.streamer is not None:
            self.streamer.end()
        self.done.set()

    def result(self) -> list[int]:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.tokens


def _batch_key(prepared: _Prepared) -> str:
    """Requests with the same decoding settings (the token cap aside) can share a batch."""
    settings = {k: v for k, v in prepared.kwargs.items() if k != "max_new_tokens"}
    return json.dumps(settings, sort_keys=True, default=str)


class DynamicBatcher:
    """Runs concurrent requests of one engine as one batched ``generate`` (left padding).

    A worker thread takes the oldest waiting request, gives others ``wait_seconds`` to arrive
    (none when ``max_batch`` are already waiting: while a batch runs, the next one fills up by
    itself), and generates for up to ``max_batch`` compatible requests at once: same decoding
    settings, and the largest token cap fits in every prompt's room in the context (positions
    never run past it). Each row ends on its own (its stop token or its own cap); the batch
    ends when all have. Streams ride along: their rows' tokens feed their streamers.

    Only greedy and unseeded sampling requests are batched (:meth:`accepts`): beam search
    cannot stream per row, and a seeded request must not share its random stream with others.
    The worker exits after ``idle_seconds`` without work and is restarted by the next
    :meth:`submit`, so an engine swapped out by a reload leaves no thread behind.
    """

    def __init__(
        self,
        engine: ChatEngine,
        max_batch: int,
        wait_seconds: float = 0.005,
        idle_seconds: float = 5.0,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.idle_seconds = idle_seconds
        self.batches = 0  # generate calls made, and requests they carried (for /health, tests)
        self.batched_requests = 0
        self._waiting: list[_Job] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @staticmethod
    def accepts(prepared: _Prepared) -> bool:
        return prepared.seed is None and int(prepared.kwargs.get("num_beams", 1)) == 1

    def submit(self, job: _Job) -> _Job:
        job.room = self.engine.context_length - len(job.prepared.input_ids)
        with self._cond:
            self._waiting.append(job)
            self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="sftops-batcher", daemon=True
                )
                self._thread.start()
        return job

    def _take(self) -> list[_Job] | None:
        """The next batch (oldest request first), or None when idle for ``idle_seconds``."""
        with self._cond:
            if not self._waiting:
                self._cond.wait(self.idle_seconds)
            if not self._waiting:
                self._thread = None
                return None
            deadline = time.monotonic() + self.wait_seconds
            while len(self._waiting) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            first = self._waiting[0]
            key = _batch_key(first.prepared)
            batch, rest = [first], []
            cap, room = first.cap, first.room
            for job in self._waiting[1:]:
                fits = max(cap, job.cap) <= min(room, job.room)
                if len(batch) < self.max_batch and fits and _batch_key(job.prepared) == key:
                    batch.append(job)
                    cap, room = max(cap, job.cap), min(room, job.room)
                else:
                    rest.append(job)
            self._waiting = rest
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            for job in batch:
                if job.cancel.is_set():
                    job.finish()
            batch = [job for job in batch if not job.done.is_set()]
            if not batch:
                continue
            self.batches += 1  # counted before generating: rows finish before generate returns
            self.batched_requests += len(batch)
            try:
                self.engine._generate_batch(batch)
            except BaseException as exc:  # every request of the batch gets the error
                log.exception("batched generation failed")
                for job in batch:
                    job.finish(exc)


class _BatchRows:
    """Streamer and stopping criterion of one batched ``generate``: routes each step's tokens
    to their requests and marks a row finished at its stop token, its cap or its cancel."""

    def __init__(self, jobs: Sequence[_Job], stop_ids: set[int]) -> None:
        self.jobs = list(jobs)
        self.stop_ids = stop_ids
        self._prompt = True

    def put(self, value: Any) -> None:
        if self._prompt:  # generate first hands over the (padded) prompts
            self._prompt = False
            for row, job in enumerate(self.jobs):
                if job.streamer is not None:
                    job.streamer.put(value[row])  # the row streamer skips its prompt
            return
        for job, token in zip(self.jobs, value.tolist(), strict=True):
            if job.done.is_set():
                continue
            if job.cancel.is_set():
                job.finish()
                continue
            job.tokens.append(token)
            if job.streamer is not None:
                job.streamer.put(value.new_tensor([token]))
            if token in self.stop_ids or len(job.tokens) >= job.cap:
                job.finish()

    def end(self) -> None:
        for job in self.jobs:
            job.finish()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = [job.done.is_set() or job.cancel.is_set() for job in self.jobs]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class TokenStream(Iterator[str]):
    """Text pieces as the model produces them (``TextIteratorStreamer`` fed by a thread).

    After the iteration ends, ``finish_reason`` and ``usage`` are set. ``close()`` asks the
    generation thread to stop early (the server calls it when a client goes away).
    """

    def __init__(self, engine: ChatEngine, prepared: _Prepared) -> None:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        self._engine = engine
        self._prepared = prepared
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._output: list[int] | None = None
        self._done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self._streamer = TextIteratorStreamer(
            engine.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = self._cancel

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        self._stopping = StoppingCriteriaList([_Cancelled()])
        self._job: _Job | None = None
        self._thread: threading.Thread | None = None
        batcher = engine.batcher
        if batcher is not None and batcher.accepts(prepared):
            self._job = _Job(prepared, streamer=self._streamer, cancel=cancel)
            batcher.submit(self._job)
        else:
            self._thread = threading.Thread(target=self._run, name="sftops-generate", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._output = self._engine._generate_ids(
                self._prepared, streamer=self._streamer, stopping_criteria=self._stopping
            )
        except BaseException as exc:  # reported to the consumer, not lost in the thread
            self._error = exc
            self._streamer.end()

    def __iter__(self) -> TokenStream:
        return self

    def __next__(self) -> str:
        while not self._done:
            try:
                piece: str = next(self._streamer)
            except StopIteration:
                self._finish()
                raise
            if piece:
                return piece
        raise StopIteration

    def _finish(self) -> None:
        self._done = True
        if self._job is not None:
            self._job.done.wait()
            self._error, self._output = self._job.error, self._job.tokens
        elif self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        completion = self._engine._summarise(self._prepared, self._output or [])
        self.finish_reason = completion.finish_reason
        self.usage = completion.usage

    def close(self) -> None:
        self._cancel.set()


class ChatEngine:
    """One loaded tokenizer + model; generation is serialised by ``lock``.

    ``max_batch`` > 1 routes greedy and unseeded sampling requests through a
    :class:`DynamicBatcher` (concurrent requests share one batched ``generate``); 1 runs every
    request on its own, one at a time. Greedy answers are the same either way.
    """

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        *,
        version_label: str = "",
        model_path: str | Path = "",
        source: str = "",
        params: GenerationParams | None = None,
        max_batch: int = 1,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    ) -> None:
        from sftops.modeling.generate import stop_token_ids
        from sftops.modeling.models import model_context_length

        self.tokenizer = tokenizer
        self.model = model
        self.version_label = version_label
        self.model_path = str(model_path)
        self.source = source
        self.params = params or GenerationParams()
        self.context_length = model_context_length(model)
        self.stop_ids = set(stop_token_ids(tokenizer))
        self.loaded_at = datetime.now(UTC)
        self.lock = threading.Lock()
        # prompts are prepared under their own lock, so requests queue up while a batch runs
        self._tokenize_lock = threading.Lock()
        self.max_batch = max(1, max_batch)
        self.batcher = (
            DynamicBatcher(self, self.max_batch, batch_wait_ms / 1000)
            if self.max_batch > 1
            else None
        )

    @classmethod
    def load(
        cls,
        source: ModelSource,
        *,
        params: GenerationParams | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_batch: int = 1,
    ) -> ChatEngine:
        """Resolve ``source`` and load its tokenizer and model (``device`` default: cuda if
        available, else cpu; ``dtype`` default float32; ``max_batch``: see the class)."""
        import torch

        from sftops.modeling.models import load_causal_lm, load_tokenizer

        path, label = source.resolve()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = load_tokenizer(path)
        model = load_causal_lm(path, dtype, device, tokenizer=tokenizer)
        log.info("loaded %s (%s) from %s on %s", source.describe(), label, path, device)
        return cls(
            tokenizer,
            model,
            version_label=label,
            model_path=path,
            source=source.describe(),
            params=params,
            max_batch=max_batch,
        )

    # -- preparing a request

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the templated conversation with the assistant header appended.

        A conversation the template cannot render (or ending with the assistant) is a
        :class:`RequestError` (400).
        """
        from sftops.modeling.formatting import generation_prompt

        conversation = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not conversation:
            raise RequestError("messages must not be empty", param="messages")
        if conversation[-1]["role"] == "assistant":
            raise RequestError(
                "the last message must not be from the assistant (the model answers it)",
                param="messages",
            )
        try:
            prompt = generation_prompt(self.tokenizer, conversation)
        except Exception as exc:  # jinja raise_exception(), TemplateError, ValueError, ...
            raise RequestError(
                f"the chat template rejects this conversation: {exc}", param="messages"
            ) from exc
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _prepare(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
        streaming: bool = False,
    ) -> _Prepared:
        from sftops.modeling.generate import generation_kwargs

        cfg = params or self.params
        if streaming and cfg.strategy == "beam":  # transformers cannot stream beam search
            cfg = cfg.model_copy(update={"strategy": "greedy"})
        ids = self.prompt_ids(messages)
        room = self.context_length - len(ids)
        if room < 1:
            raise PromptTooLong(len(ids), self.context_length)
        wanted = max_tokens if max_tokens is not None else cfg.max_new_tokens
        kwargs = generation_kwargs(cfg, self.tokenizer)
        kwargs["max_new_tokens"] = max(1, min(wanted, room))
        return _Prepared(ids, kwargs, seed if cfg.strategy == "sample" else None)

    # -- generating

    def _generate_ids(self, prepared: _Prepared, **extra: Any) -> list[int]:
        """New token ids (prompt excluded), under the lock."""
        import torch

        with self.lock, torch.inference_mode():
            if prepared.seed is not None:
                torch.manual_seed(prepared.seed)
            input_ids = torch.tensor([prepared.input_ids], device=self.model.device)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                **prepared.kwargs,
                **extra,
            )
        new: list[int] = output[0, len(prepared.input_ids) :].tolist()
        return new

    def _generate_batch(self, jobs: Sequence[_Job]) -> None:
        """One left-padded ``generate`` for ``jobs`` (same settings; see DynamicBatcher);
        each job gets its own new token ids, ending at its stop token or its cap."""
        import torch
        from transformers import StoppingCriteriaList

        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = min(self.stop_ids)
        width = max(len(job.prepared.input_ids) for job in jobs)
        ids, mask = [], []
        for job in jobs:
            gap = width - len(job.prepared.input_ids)
            ids.append([pad] * gap + job.prepared.input_ids)
            mask.append([0] * gap + [1] * len(job.prepared.input_ids))
        kwargs = {**jobs[0].prepared.kwargs, "max_new_tokens": max(job.cap for job in jobs)}
        rows = _BatchRows(jobs, self.stop_ids)
        with self.lock, torch.inference_mode():
            self.model.generate(
                input_ids=torch.tensor(ids, device=self.model.device),
                attention_mask=torch.tensor(mask, device=self.model.device),
                **kwargs,
                streamer=rows,
                stopping_criteria=StoppingCriteriaList([rows]),
            )
        rows.end()

    def _summarise(self, prepared: _Prepared, new: list[int]) -> Completion:
        ended = next((k for k, t in enumerate(new) if t in self.stop_ids), None)
        kept = new[:ended] if ended is not None else new
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        usage = Usage(len(prepared.input_ids), len(kept) + (ended is not None))
        return Completion(text, usage, "stop" if ended is not None else "length")

    def complete(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        """The whole answer at once: ``Completion(text, usage, finish_reason)``.

        ``params`` defaults to the engine's; ``max_tokens`` overrides ``params.max_new_tokens``
        and is clamped to the room the prompt leaves in the context. Raises
        :class:`PromptTooLong` when the prompt alone fills the context, :class:`RequestError`
        for a conversation the template cannot render.
        """
        with self._tokenize_lock:  # tokenizers are not safe to share between threads mid-call
            prepared = self._prepare(messages, params, max_tokens=max_tokens, seed=seed)
        if self.batcher is not None and self.batcher.accepts(prepared):
            job = self.batcher.submit(_Job(prepared))
            return self._summarise(prepared, job.result())
        return self._summarise(prepared, self._generate_ids(prepared))

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> TokenStream:
        """The answer as text pieces while it is generated (see :class:`TokenStream`).

        The prompt is checked before this returns, so :class:`PromptTooLong` /
        :class:`RequestError` come from this call, not from the iteration.
        """
        with self._tokenize_lock:
            prepared = self._prepare(
                messages, params, max_tokens=max_tokens, seed=seed, streaming=True
            )
        return TokenStream(self, prepared)


# ----------------------------------------------------------------------------- reloading


EngineLoader = Callable[[ModelSource], ChatEngine]


@dataclass
class ModelServer:
    """The engine currently served, its source, and the poller that reloads it.

    ``loader`` builds an engine from a source (default :meth:`ChatEngine.load`); the first
    engine is loaded in the constructor, so a bad source fails before the server starts.
    """

    source: ModelSource
    poll_seconds: float = DEFAULT_POLL_SECONDS
    params: GenerationParams = field(default_factory=GenerationParams)
    loader: EngineLoader | None = None
    served_model_name: str | None = None
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        if self.loader is None:
            params, max_batch = self.params, self.max_batch
            self.loader = lambda source: ChatEngine.load(source, params=params, max_batch=max_batch)
        self._engine = self.loader(self.source)
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.last_poll_at: datetime | None = None
        self.last_poll_error: str | None = None
        if self.served_model_name is None:
            described = self.source.describe()
            match = _MODELS_URI.match(described)
            self.served_model_name = match["name"] if match else Path(described).name or "model"

    @property
    def engine(self) -> ChatEngine:
        return self._engine

    def check_for_update(self) -> bool:
        """One poll: reload and swap if the version label moved; True if it swapped.

        Errors are logged and kept in ``last_poll_error``; the current engine keeps serving.
        """
        with self._swap_lock:
            try:
                label = self.source.version_label()
                changed = label != self._engine.version_label
                if changed:
                    log.info("%s moved to %s; reloading", self.source.describe(), label)
                    assert self.loader is not None
                    engine = self.loader(self.source)
                    self._engine = engine  # one assignment: requests see old or new, whole
                    self.reloads += 1
                    log.info("now serving %s", engine.version_label)
                self.last_poll_error = None
                return changed
            except Exception as exc:
                self.last_poll_error = f"{type(exc).__name__}: {exc}"
                log.warning("version poll of %s failed: %s", self.source.describe(), exc)
                return False
            finally:
                self.last_poll_at = datetime.now(UTC)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check_for_update()

    def start_polling(self) -> None:
        """Start the background poller (no-op when ``poll_seconds`` <= 0 or already running)."""
        if self.poll_seconds <= 0 or (self._thread and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_loop, name="sftops-poll", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def health(self) -> dict[str, Any]:
        engine = self._engine
        return {
            "status": "ok",
            "model": self.served_model_name,
            "source": self.source.describe(),
            "version": engine.version_label,
            "loaded_at": engine.loaded_at.isoformat(),
            "model_path": engine.model_path,
            "context_length": engine.context_length,
            "poll_seconds": self.poll_seconds,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "last_poll_error": self.last_poll_error,
            "reloads": self.reloads,
            "max_batch": engine.max_batch,
            "batches": engine.batcher.batches if engine.batcher else 0,
            "batched_requests": engine.batcher.batched_requests if engine.batcher else 0,
        }


# ----------------------------------------------------------------------------- HTTP


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


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Validate a request body; every problem is a :class:`RequestError` (400 / 413)."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(
            f"request body over {MAX_BODY_BYTES} bytes", status=413, code="body_too_large"
        )
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


def create_app(server: ModelServer) -> FastAPI:
    """The FastAPI application over ``server`` (see the module docstring for the API)."""
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
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise RequestError(
                    f"request body over {MAX_BODY_BYTES} bytes", status=413, code="body_too_large"
                )
            req = parse_chat_request(await request.body())
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


def bind_socket(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening TCP socket (port 0 = any free port); SftopsError if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SftopsError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """Run a :class:`ModelServer` over HTTP in a background thread (tests, notebooks).

    ``with BackgroundServer(model_server) as running: httpx.get(running.url + "/health")``.
    Binds ``host`` (default 127.0.0.1) and ``port`` (default 0: a free port, see ``port``).
    """

    def __init__(self, model_server: ModelServer, host: str = DEFAULT_HOST, port: int = 0) -> None:
        import uvicorn

        self.model_server = model_server
        self.socket = bind_socket(host, port)
        self.host, self.port = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            create_app(model_server), log_level="warning", access_log=False, lifespan="off"
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SftopsError("the HTTP server did not start")
            time.sleep(0.02)
        self.model_server.start_polling()
        return self

    def stop(self) -> None:
        self.model_server.stop_polling()
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)
        self.socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    source: ModelSource,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    *,
    params: GenerationParams | None = None,
    loader: EngineLoader | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> None:
    """Load the model from ``source`` and serve it until interrupted (blocking).

    Binds ``host:port`` (127.0.0.1 by default: loopback only), polls the source's version
    every ``poll_seconds`` (<= 0: never) and swaps in a new version when it moves; up to
    ``max_batch`` concurrent requests share one ``generate`` (1: one at a time).
    """
    import uvicorn

    if "torch" not in sys.modules:  # read by OpenMP when torch loads, so only before that
        # libgomp's idle workers spin; a server's generation threads mostly wait, and on a busy
        # CPU the spinning starves the thread doing the work (generation measured 5-20x slower
        # on 2 shared cores). OMP_WAIT_POLICY=ACTIVE in the environment still wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sock = bind_socket(host, port)  # fail on a taken port before spending time loading
    model_server: ModelServer | None = None
    try:
        model_server = ModelServer(
            source,
            poll_seconds=poll_seconds,
            params=params or GenerationParams(),
            loader=loader,
            max_batch=max_batch,
        )
        model_server.start_polling()
        log.info(
            "serving %s (%s) on http://%s:%d",
            source.describe(),
            model_server.engine.version_label,
            host,
            sock.getsockname()[1],
        )
        config = uvicorn.Config(create_app(model_server), log_level="info", lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if model_server is not None:
            model_server.stop_polling()
        sock.close()


# ----------------------------------------------------------------------------- terminal chat


REPL_HELP = "type a message; /reset clears the conversation, /exit quits"


def chat_repl(
    source: ModelSource | ChatEngine,
    params: GenerationParams | None = None,
    input_fn: Callable[[str], str] = input,
    output: IO[str] | None = None,
    *,
    system: str | None = None,
) -> list[Message]:
    """An interactive chat in the terminal; returns the conversation at exit.

    Answers are printed token by token as they are generated. The whole conversation is the
    prompt of each turn (multi-turn); when it no longer fits the context the oldest turns are
    dropped, with a note. ``/reset`` starts over (keeping ``system``), ``/exit`` / ``/quit`` /
    end of input leave. ``input_fn`` and ``output`` are injectable for tests.
    """
    out = output if output is not None else sys.stdout

    def say(text: str = "", end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    if isinstance(source, ChatEngine):
        engine = source
    else:
        say(f"loading {source.describe()} ...")
        engine = ChatEngine.load(source, params=params)
    say(f"model {engine.version_label} ({engine.model_path}); {REPL_HELP}")
    start: list[Message] = [{"role": "system", "content": system}] if system else []
    history = list(start)
    while True:
        try:
            line = input_fn("you> ")
        except (EOFError, KeyboardInterrupt):
            say()
            break
        command = line.strip()
        if not command:
            continue
        if command in ("/exit", "/quit"):
            break
        if command == "/reset":
            history = list(start)
            say("(conversation cleared)")
            continue
        if command.startswith("/") and command.split()[0] in ("/help", "/?"):
            say(REPL_HELP)
            continue
        turn = [*history, {"role": "user", "content": line}]
        dropped = 0
        stream: TokenStream | None = None
        while stream is None:
            try:
                stream = engine.stream(turn, params)
            except PromptTooLong as err:
                if len(turn) - len(start) <= 1:  # the new message alone does not fit
                    say(f"(error: {err.message})")
                    break
                del turn[len(start) : len(start) + 2]  # the oldest user/assistant exchange
                dropped += 1
            except RequestError as err:
                say(f"(error: {err.message})")
                break
        if stream is None:
            continue  # the history is left as it was
        history = turn
        if dropped:
            say(f"(dropped the {dropped} oldest exchange(s) to fit the model's context)")
        say("assistant> ", end="")
        pieces: list[str] = []
        for piece in stream:
            pieces.append(piece)
            say(piece, end="")
        say()
        if stream.finish_reason == "length":
            say("(answer cut at the token limit)")
        history.append({"role": "assistant", "content": "".join(pieces).strip()})
    return history
