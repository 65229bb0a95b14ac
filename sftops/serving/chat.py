"""The terminal chat (``sftops chat``): streamed tokens, multi-turn history, ``/reset`` and
``/exit``; when the history outgrows the context the oldest turns are dropped (and it says so).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO

from sftops.config import GenerationParams
from sftops.serving.engine import ChatEngine, Message, TokenStream
from sftops.serving.errors import PromptTooLong, RequestError
from sftops.serving.sources import ModelSource

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
