"""The chat engine: one loaded tokenizer + model that answers conversations, whole
(:meth:`ChatEngine.complete`) or streamed (:meth:`ChatEngine.stream`, a :class:`TokenStream`).

Prompts are rendered with the tokenizer's chat template through
:func:`sftops.modeling.formatting.generation_prompt`, the very text training and evaluation
use, and generation stops at the end-of-turn token
(:func:`sftops.modeling.generate.stop_token_ids`). With ``max_batch`` > 1 (the server's
default, ``sftops serve --max-batch``) a :class:`~sftops.serving.batching.DynamicBatcher` runs
concurrent greedy / unseeded sampling requests as one batched ``generate``.

A prompt that alone fills the model's context (``prompt_tokens >= context_length``) is
:class:`~sftops.serving.errors.PromptTooLong`; one that fits but leaves less room than
``max_tokens`` is answered with ``max_tokens`` clamped to the room left (``finish_reason``
"length" if the answer hits it).

torch and transformers are imported when first needed: ``sftops serve`` sets OpenMP's wait
policy before torch loads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sftops.config import GenerationParams
from sftops.serving.batching import DynamicBatcher, Job, Prepared
from sftops.serving.errors import PromptTooLong, RequestError
from sftops.serving.sources import ModelSource

log = logging.getLogger(__name__)

DEFAULT_BATCH_WAIT_MS = 5.0
"""How long an idle batcher waits for company before generating for a lone request."""

Message = dict[str, str]


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


class TokenStream(Iterator[str]):
    """Text pieces as the model produces them (``TextIteratorStreamer`` fed by a thread).

    After the iteration ends, ``finish_reason`` and ``usage`` are set. ``close()`` asks the
    generation thread to stop early (the server calls it when a client goes away).
    """

    def __init__(self, engine: ChatEngine, prepared: Prepared) -> None:
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
        self._job: Job | None = None
        self._thread: threading.Thread | None = None
        batcher = engine.batcher
        if batcher is not None and batcher.accepts(prepared):
            self._job = Job(prepared, streamer=self._streamer, cancel=cancel)
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
    ) -> Prepared:
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
        return Prepared(ids, kwargs, seed if cfg.strategy == "sample" else None)

    # -- generating

    def _generate_ids(self, prepared: Prepared, **extra: Any) -> list[int]:
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

    def _summarise(self, prepared: Prepared, new: list[int]) -> Completion:
        from sftops.modeling.generate import Generation

        answer = Generation.from_tokens(self.tokenizer, new, self.stop_ids)
        usage = Usage(len(prepared.input_ids), answer.new_tokens)
        return Completion(answer.text, usage, "length" if answer.hit_max_new_tokens else "stop")

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
            job = self.batcher.submit(Job(prepared))
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
