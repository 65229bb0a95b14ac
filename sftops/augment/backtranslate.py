"""Back-translation: source -> pivot -> source through a local MT engine.

Two engines behind one ``Translator`` interface: Apertium (Debian packages, rule-based, many
lines per process call; English only here) and any local transformers seq2seq model folder
(MarianMT, NLLB, ...) for users who have one. Chinese rows are back-translated only with the
seq2seq engine and a model for both directions, e.g. ``augment.backtranslation``:
``{engine: seq2seq, pivots: [en], models: {zh-en: models/opus-mt-zh-en, en-zh:
models/opus-mt-en-zh}}`` (English rows then need a pivot of their own, e.g. ``de`` with
``en-de`` / ``de-en`` models); rows without a model are counted as skipped. Translations are
cached by (direction, text), so an unchanged rerun
costs only the cache lookups.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sftops.augment.memo import JsonlMemo, text_key
from sftops.errors import SftopsError

# Apertium pair names for the pivots it can round-trip through from English.
APERTIUM_PAIRS = {"spa": ("eng-spa", "spa-eng"), "cat": ("eng-cat", "cat-eng")}
APERTIUM_PACKAGES = {"spa": "apertium-eng-spa", "cat": "apertium-eng-cat"}
APERTIUM_MODES_DIR = Path("/usr/share/apertium/modes")


class Translator(Protocol):
    name: str

    def translate(self, texts: Sequence[str], direction: str) -> list[str]:
        """Translate each text (``direction`` like ``eng-spa``); one output per input."""
        ...


def _lines_out(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Flatten texts into lines (MT engines work line by line) and remember the line counts."""
    lines: list[str] = []
    counts: list[int] = []
    for text in texts:
        parts = text.split("\n")
        lines.extend(parts)
        counts.append(len(parts))
    return lines, counts


def _lines_in(lines: Sequence[str], counts: Sequence[int]) -> list[str]:
    out, position = [], 0
    for count in counts:
        out.append("\n".join(lines[position : position + count]))
        position += count
    return out


class ApertiumTranslator:
    """Rule-based MT through the ``apertium`` command: one process per batch of lines."""

    name = "apertium"

    def __init__(self, pivots: Sequence[str]) -> None:
        if shutil.which("apertium") is None:
            raise SftopsError(
                "the `apertium` command is missing: install the Debian package apertium "
                "(scripts/setup.sh does)"
            )
        for pivot in pivots:
            if pivot not in APERTIUM_PAIRS:
                raise SftopsError(
                    f"augment.backtranslation.pivots: unknown Apertium pivot {pivot!r} "
                    f"(available: {', '.join(APERTIUM_PAIRS)})"
                )
            for pair in APERTIUM_PAIRS[pivot]:
                if not (APERTIUM_MODES_DIR / f"{pair}.mode").exists():
                    raise SftopsError(
                        f"Apertium pair {pair} is not installed: install the Debian package "
                        f"{APERTIUM_PACKAGES[pivot]} (scripts/setup.sh does)"
                    )

    def translate(self, texts: Sequence[str], direction: str) -> list[str]:
        if not texts:
            return []
        lines, counts = _lines_out(texts)
        done = subprocess.run(
            ["apertium", "-u", direction],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SftopsError(f"apertium {direction} failed: {done.stderr.strip()[:200]}")
        translated = done.stdout.split("\n")[: len(lines)]
        if len(translated) != len(lines):
            raise SftopsError(
                f"apertium {direction} returned {len(translated)} lines for {len(lines)}"
            )
        return _lines_in([t.strip() for t in translated], counts)


class Seq2SeqTranslator:
    """Any local transformers seq2seq model folder per direction (MarianMT, NLLB, ...)."""

    name = "seq2seq"

    def __init__(self, models: dict[str, str], batch_size: int = 32, max_new_tokens: int = 256):
        self.models = models
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self._loaded: dict[str, tuple[Any, Any]] = {}

    def _load(self, direction: str) -> tuple[Any, Any]:
        if direction not in self._loaded:
            if direction not in self.models:
                raise SftopsError(
                    f"augment.backtranslation.models has no model for {direction!r} "
                    f"(configured: {', '.join(self.models) or 'none'})"
                )
            import torch
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            folder = self.models[direction]
            if not Path(folder).is_dir():
                raise SftopsError("model folder not found", file=folder)
            device = "cuda" if torch.cuda.is_available() else "cpu"
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForSeq2SeqLM.from_pretrained(folder).to(device).eval()
            self._loaded[direction] = (tokenizer, model)
        return self._loaded[direction]

    def translate(self, texts: Sequence[str], direction: str) -> list[str]:
        import torch

        tokenizer, model = self._load(direction)
        lines, counts = _lines_out(texts)
        # Blank lines stay blank and never reach the model: a batch of them encodes to zero
        # tokens with tokenizers that add no end-of-sequence token, which generate() rejects.
        nonblank = [i for i, line in enumerate(lines) if line.strip()]
        order = sorted(nonblank, key=lambda i: len(lines[i]))  # less padding
        out: list[str] = [""] * len(lines)
        for start in range(0, len(order), self.batch_size):
            batch = [lines[i] for i in order[start : start + self.batch_size]]
            encoded = tokenizer(
                batch, return_tensors="pt", padding=True, truncation=True, max_length=512
            ).to(model.device)
            with torch.inference_mode():
                generated = model.generate(
                    **encoded, max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False
                )
            decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
            for index, text in zip(order[start : start + self.batch_size], decoded, strict=True):
                out[index] = text.strip()
        return _lines_in(out, counts)


class TranslationCache(JsonlMemo[str]):
    """(direction, text) -> translation, persisted as JSON Lines in the cache folder."""

    def __init__(self, path: str | Path | None) -> None:
        super().__init__(path, str)

    @staticmethod
    def key(direction: str, engine: str, text: str) -> str:
        return text_key(engine, direction, text)

    def translate(self, translator: Translator, texts: Sequence[str], direction: str) -> list[str]:
        return self.get_many(
            texts,
            lambda text: self.key(direction, translator.name, text),
            lambda todo: translator.translate(todo, direction),
        )


def make_translator(engine: str, pivots: Sequence[str], models: dict[str, str], batch_size: int):
    if engine == "apertium":
        return ApertiumTranslator(pivots)
    return Seq2SeqTranslator(models, batch_size=batch_size)


def round_trip_directions(engine: str, pivot: str, source: str = "en") -> tuple[str, str]:
    """The two directions of a round trip from ``source`` through ``pivot``.

    >>> round_trip_directions("apertium", "spa"), round_trip_directions("seq2seq", "de")
    (('eng-spa', 'spa-eng'), ('en-de', 'de-en'))
    >>> round_trip_directions("seq2seq", "en", source="zh")
    ('zh-en', 'en-zh')
    """
    if engine == "apertium":
        return APERTIUM_PAIRS[pivot]
    return (f"{source}-{pivot}", f"{pivot}-{source}")


def can_round_trip(engine: str, models: dict[str, str], source: str, pivot: str) -> bool:
    """Whether ``engine`` can take ``source`` text through ``pivot`` and back: Apertium's pairs
    here are English-only; seq2seq needs a model folder for both directions.

    >>> can_round_trip("apertium", {}, "zh", "spa"), can_round_trip("apertium", {}, "en", "spa")
    (False, True)
    >>> can_round_trip("seq2seq", {"zh-en": "a", "en-zh": "b"}, "zh", "en")
    True
    """
    if pivot == source:
        return False
    if engine == "apertium":
        return source == "en" and pivot in APERTIUM_PAIRS
    return all(d in models for d in round_trip_directions(engine, pivot, source))


MASKABLE_RE = re.compile(r"\[[A-Z_]+\]|`[^`\n]+`|https?://\S+")
MASK_RE = re.compile(r"Zqx(\d+)")


def mask_protected(text: str) -> tuple[str, list[str]]:
    """Swap placeholders, inline code and URLs for opaque tokens an MT engine passes through.

    >>> mask_protected("Call [PHONE] or run `ls`")
    ('Call Zqx0 or run Zqx1', ['[PHONE]', '`ls`'])
    """
    tokens: list[str] = []

    def swap(match: re.Match[str]) -> str:
        tokens.append(match.group())
        return f"Zqx{len(tokens) - 1}"

    return MASKABLE_RE.sub(swap, text), tokens


def unmask(text: str, tokens: list[str]) -> str:
    """Inverse of :func:`mask_protected` (a token the engine mangled stays mangled, and the
    filter rejects the candidate for a lost protected token).

    >>> unmask("Llama a Zqx0", ["[PHONE]"])
    'Llama a [PHONE]'
    """
    return MASK_RE.sub(
        lambda m: tokens[int(m.group(1))] if int(m.group(1)) < len(tokens) else m.group(), text
    )


def back_translate(
    translator: Translator,
    cache: TranslationCache,
    texts: Sequence[str],
    pivot: str,
    source: str = "en",
) -> list[str]:
    """source -> pivot -> source for each text, protected tokens masked on the way."""
    forward, backward = round_trip_directions(translator.name, pivot, source)
    masked = [mask_protected(t) for t in texts]
    middle = cache.translate(translator, [m for m, _ in masked], forward)
    back = cache.translate(translator, middle, backward)
    return [unmask(b, tokens) for b, (_, tokens) in zip(back, masked, strict=True)]
