"""Answers of a model on the test prompts, cached on disk across runs.

The base model and the test split rarely change between two runs of the pipeline, yet
generating the base model's answers is a large part of the evaluate stage on a CPU. The answers
are stored under a key made of everything that decides them: the model's files, the exact
prompts (test rows and chat template), the generation params, the decoding engine, the device
and the library versions. A run with the same key reads them back instead of generating again;
anything that changes the answers changes the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sftops.config import GenerationParams
from sftops.io import write_json
from sftops.modeling.generate import Generation

log = logging.getLogger("sftops.evaluate")
CACHE_VERSION = 1  # bump when decoding changes in a way the key does not see
_READ_BLOCK = 1 << 20


def folder_fingerprint(folder: str | Path) -> str:
    """Hash of every file in a model folder (relative names and contents).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a").write_text("x")
    >>> h = folder_fingerprint(d); _ = (d / "a").write_text("y"); h == folder_fingerprint(d)
    False
    """
    root = Path(folder)
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_READ_BLOCK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def generation_key(
    model_hash: str,
    prompts: list[str],
    cfg: GenerationParams,
    engine: str = "hf",
    device: str = "cpu",
) -> str:
    """The cache key of the answers of one model to ``prompts`` with ``cfg``.

    >>> from sftops.config import GenerationParams as G
    >>> generation_key("m", ["p"], G()) == generation_key("m", ["p"], G(max_new_tokens=7))
    False
    """
    import torch
    import transformers

    prompts_hash = hashlib.blake2b("\0".join(prompts).encode(), digest_size=16).hexdigest()
    parts = {
        "version": CACHE_VERSION,
        "model": model_hash,
        "prompts": prompts_hash,
        "generation": cfg.model_dump(mode="json"),
        "engine": engine,
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


class GenerationCache:
    """Answers by key, one JSON file per key under ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str, n_prompts: int) -> list[Generation] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["answers"]
            answers = [Generation(**row) for row in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cached answers %s (%s)", path, exc)
            return None
        return answers if len(answers) == n_prompts else None

    def put(self, key: str, answers: list[Generation]) -> None:
        write_json({"answers": [asdict(a) for a in answers]}, self._path(key))
