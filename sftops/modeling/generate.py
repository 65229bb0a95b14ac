"""Batched generation with the KV cache: left padding, length-sorted batches, stop at the end
of the assistant turn; greedy, beam search and sampling from params.

Prompts are built with the same chat template as training (`formatting.generation_prompt`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sftops.config import GenerationParams


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    hit_max_new_tokens: bool  # never emitted the end-of-turn token: capped by max_new_tokens


def stop_token_ids(tokenizer: Any) -> list[int]:
    """End-of-turn and EOS ids: generation stops at whichever comes first."""
    from sftops.modeling.formatting import turn_end_token

    ids = {tokenizer.convert_tokens_to_ids(turn_end_token(tokenizer))}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None and i >= 0)


def generation_kwargs(cfg: GenerationParams, tokenizer: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": cfg.max_new_tokens,
        "eos_token_id": stop_token_ids(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "repetition_penalty": cfg.repetition_penalty,
    }
    if cfg.strategy == "greedy":
        kwargs.update(do_sample=False, num_beams=1)
    elif cfg.strategy == "beam":
        kwargs.update(
            do_sample=False,
            num_beams=cfg.num_beams,
            length_penalty=cfg.length_penalty,
            early_stopping=cfg.early_stopping,
        )
    else:
        kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)
    return kwargs


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    cfg: GenerationParams,
    progress: bool = False,
) -> list[Generation]:
    """Generate for every prompt, in batches of similar length (less padding), results in the
    order of ``prompts``."""
    if not prompts:
        return []
    if cfg.strategy == "sample":
        torch.manual_seed(cfg.seed)
    tokenizer.padding_side = "left"  # new tokens must line up at the right edge
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    stops = set(stop_token_ids(tokenizer))
    kwargs = generation_kwargs(cfg, tokenizer)
    out: list[Generation | None] = [None] * len(prompts)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(prompts), disable=not progress, desc="generate", unit="row")
    for start in range(0, len(order), cfg.batch_size):
        index = order[start : start + cfg.batch_size]
        batch = tokenizer(
            [prompts[i] for i in index], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        generated = model.generate(**batch, **kwargs)
        new = generated[:, batch["input_ids"].shape[1] :]
        for row, i in enumerate(index):
            tokens = new[row].tolist()
            ended = next((k for k, t in enumerate(tokens) if t in stops), None)
            kept = tokens[:ended] if ended is not None else tokens
            out[i] = Generation(
                text=tokenizer.decode(kept, skip_special_tokens=True).strip(),
                new_tokens=len(kept) + (ended is not None),
                hit_max_new_tokens=ended is None,
            )
        bar.update(len(index))
    bar.close()
    return [g for g in out if g is not None]


def one_at_a_time(
    model: Any, tokenizer: Any, prompts: Sequence[str], cfg: GenerationParams
) -> tuple[list[Generation], float]:
    """The reference: a plain `generate` call per prompt (for the benchmark)."""
    single = cfg.model_copy(update={"batch_size": 1})
    started = time.perf_counter()
    results = [generate(model, tokenizer, [p], single)[0] for p in prompts]
    return results, time.perf_counter() - started
