"""Dynamic batching: concurrent greedy / unseeded sampling requests of one engine, streamed or
not, generated as one left-padded batched ``generate``; each row stops on its own and greedy
answers are the same as one request at a time. Batching is static: a request arriving while a
batch runs waits for the next one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sftops.serving.engine import ChatEngine

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A request ready to generate: prompt ids, ``generate`` keyword arguments, its seed."""

    input_ids: list[int]
    kwargs: dict[str, Any]
    seed: int | None


@dataclass(eq=False)
class Job:
    """One request waiting for (or riding in) a batch: its new token ids arrive in ``tokens``.

    ``streamer`` (a ``TextIteratorStreamer``) is fed this row's tokens as they come; ``cancel``
    drops the row from its batch at the next step; ``done`` is set once the row ended (its
    stop token, its own token cap, a cancel, or an error in ``error``).
    """

    prepared: Prepared
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


def _batch_key(prepared: Prepared) -> str:
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
        self._waiting: list[Job] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @staticmethod
    def accepts(prepared: Prepared) -> bool:
        return prepared.seed is None and int(prepared.kwargs.get("num_beams", 1)) == 1

    def submit(self, job: Job) -> Job:
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

    def _take(self) -> list[Job] | None:
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
                generate_batch(self.engine, batch)
            except BaseException as exc:  # every request of the batch gets the error
                log.exception("batched generation failed")
                for job in batch:
                    job.finish(exc)


class _BatchRows:
    """Streamer and stopping criterion of one batched ``generate``: routes each step's tokens
    to their requests and marks a row finished at its stop token, its cap or its cancel."""

    def __init__(self, jobs: Sequence[Job], stop_ids: set[int]) -> None:
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


def generate_batch(engine: ChatEngine, jobs: Sequence[Job]) -> None:
    """One left-padded ``generate`` of ``engine`` for ``jobs`` (same settings; see
    DynamicBatcher); each job gets its own new token ids, ending at its stop token or its cap."""
    import torch
    from transformers import StoppingCriteriaList

    pad = engine.tokenizer.pad_token_id
    if pad is None:
        pad = min(engine.stop_ids)
    width = max(len(job.prepared.input_ids) for job in jobs)
    ids, mask = [], []
    for job in jobs:
        gap = width - len(job.prepared.input_ids)
        ids.append([pad] * gap + job.prepared.input_ids)
        mask.append([0] * gap + [1] * len(job.prepared.input_ids))
    kwargs = {**jobs[0].prepared.kwargs, "max_new_tokens": max(job.cap for job in jobs)}
    rows = _BatchRows(jobs, engine.stop_ids)
    model = engine.model
    with engine.lock, torch.inference_mode():
        model.generate(
            input_ids=torch.tensor(ids, device=model.device),
            attention_mask=torch.tensor(mask, device=model.device),
            **kwargs,
            streamer=rows,
            stopping_criteria=StoppingCriteriaList([rows]),
        )
    rows.end()
