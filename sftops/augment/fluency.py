"""Fluency: how much less likely a small causal LM finds the candidate than the original.

A wrong-sense synonym ("waited an hour for our nutrient", "Highly advocated") or a garbled
round trip ("Classify the sentiment like positive") keeps most of the sentence embedding but
costs the language model several nats; a good paraphrase costs little. The score of a text is
its summed token NLL (the change is local, so the sum, not the mean, measures it), computed in
fp32 on the CPU; an increase that close to its limit that fp32's last bits could decide it is
recomputed in fp64 (``exact``; see ``augment.judge``), so the decision is the same on every
machine. Scores are cached by
text hash like the embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sftops.errors import SftopsError


def resolve_fluency_model(name: str, cache_dir: str | Path) -> Path:
    """A model name known to ``sftops.modeling`` (e.g. the built-in SmolLM2) or a folder."""
    from sftops.modeling.models import resolve_model_path

    try:
        return resolve_model_path(name, cache_dir)
    except SftopsError as err:
        raise SftopsError(f"augment.filter.fluency_model: {err}") from err


def fluency_name(model: str, exact: bool = False) -> str:
    """Cache key of a fluency model, known without loading it.

    >>> fluency_name("models/smollm2"), fluency_name("smollm2-135m-instruct", exact=True)
    ('smollm2-nll-float32', 'smollm2-135m-instruct-nll-float64')
    """
    return f"{Path(model).name}-nll-float{64 if exact else 32}"


class FluencyScorer:
    """Summed next-token NLL of each text under a causal LM (fp32, CPU, batched; fp64 with
    ``exact``, for the re-check of candidates near the threshold)."""

    def __init__(
        self, folder: str | Path, batch_size: int = 16, max_tokens: int = 192, exact: bool = False
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.exact = exact
        self.dtype = torch.float64 if exact else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=self.dtype).eval()
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.name = fluency_name(str(folder), exact)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        bos = self.tokenizer.bos_token_id
        if bos is None:
            bos = self.tokenizer.eos_token_id
        out = np.zeros((len(texts), 1), dtype=np.float64 if self.exact else np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            index = order[start : start + self.batch_size]
            encoded = [
                [bos, *self.tokenizer(texts[i], add_special_tokens=False).input_ids][
                    : self.max_tokens
                ]
                for i in index
            ]
            width = max(len(e) for e in encoded)
            ids = torch.full((len(encoded), width), self.tokenizer.pad_token_id)
            mask = torch.zeros((len(encoded), width), dtype=torch.long)
            for row, e in enumerate(encoded):
                ids[row, : len(e)] = torch.tensor(e)
                mask[row, : len(e)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            logits = logits.to(self.dtype)
            logp = torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None])[..., 0]
            nll = -(logp * mask[:, 1:]).sum(dim=1)
            out[index, 0] = nll.numpy()
        return out


def load_scorer(name: str, cache_dir: str | Path, exact: bool = False) -> Any:
    return FluencyScorer(resolve_fluency_model(name, cache_dir), exact=exact)
