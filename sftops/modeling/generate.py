"""Batched generation with the KV cache: left padding, length-sorted batches, stop at the end
of the assistant turn; greedy, beam search and sampling from params.

Greedy decoding (the evaluation default) runs its own loop over the model's forward pass instead of
``model.generate``: rows that have emitted their end-of-turn token leave the batch and their rows
of the KV cache, a few at a time (a removal copies the cache; until then an ended row's extra
tokens are cut from its answer), and padding columns no remaining row needs are cut from the cache,
so the compute per step follows the rows still generating. The prompt pass runs in groups of
similar length (``prefill_groups``): padding a batch of 37- to 118-token prompts to 118 doubled the
prompt tokens, and that pass cost more than the decoding after it. The cache reserves room for the
new tokens, so a step writes one position instead of concatenating (copying) the whole cache. The
logits are those of ``generate`` (same forward, same position ids, padding masked) up to the float
rounding of differently shaped matrix products, as between batched and one-at-a-time ``generate``;
the tests check that greedy tokens equal one-at-a-time decoding. Beam search and sampling keep
``model.generate``. (transformers' continuous batching, ``generate_batch``, gives the same tokens
but took about a minute for 12 prompts of a tiny model on CPU: it is built for GPUs.)

Prompts are built with the same chat template as training (`formatting.generation_prompt`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sftops.config import GenerationParams
from sftops.modeling.packed import packed_linears


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    hit_max_new_tokens: bool  # never emitted the end-of-turn token: capped by max_new_tokens

    @classmethod
    def from_tokens(
        cls, tokenizer: Any, tokens: Sequence[int], stops: Collection[int]
    ) -> Generation:
        """The answer in ``tokens`` (new token ids, prompt excluded): text up to the first stop
        token; the stop token counts as generated but is not part of the text."""
        kept, stopped = trim_at_stop(tokens, stops)
        return cls(
            text=tokenizer.decode(kept, skip_special_tokens=True).strip(),
            new_tokens=len(kept) + stopped,
            hit_max_new_tokens=not stopped,
        )


def trim_at_stop(tokens: Sequence[int], stops: Collection[int]) -> tuple[list[int], bool]:
    """The tokens before the first stop token, and whether there was one.

    Generation runs in batches, so a row may go on past its stop token (until every row of the
    batch has ended): everything from the first stop token on is not the row's answer.

    >>> trim_at_stop([5, 6, 2, 7, 2], {2})
    ([5, 6], True)
    >>> trim_at_stop([5, 6], {2})
    ([5, 6], False)
    """
    ended = next((k for k, t in enumerate(tokens) if t in stops), None)
    return (list(tokens[:ended]), True) if ended is not None else (list(tokens), False)


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
    compact: bool = True,
) -> list[Generation]:
    """Generate for every prompt, in batches of similar length (less padding), results in the
    order of ``prompts``.

    ``compact=False`` runs greedy decoding through plain ``model.generate`` too (the reference
    the benchmark compares with).
    """
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
    # The packed weights are sftops' engine only: `compact=False` is the reference it is
    # measured against.
    with packed_linears(model) if compact else contextlib.nullcontext():
        for start in range(0, len(order), cfg.batch_size):
            index = order[start : start + cfg.batch_size]
            batch = tokenizer(
                [prompts[i] for i in index],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(model.device)
            if cfg.strategy == "greedy" and compact:
                new_rows = greedy_compact(
                    model, batch["input_ids"], batch["attention_mask"], cfg, sorted(stops)
                )
            else:
                generated = model.generate(**batch, **kwargs)
                new_rows = generated[:, batch["input_ids"].shape[1] :].tolist()
            for row, i in enumerate(index):
                out[i] = Generation.from_tokens(tokenizer, new_rows[row], stops)
            bar.update(len(index))
    bar.close()
    return [g for g in out if g is not None]


def _penalise_repeats(logits: Any, seen: Any, penalty: float) -> Any:
    """transformers' repetition penalty: the logit of every token already in the row (prompt
    included) is divided by ``penalty`` when positive, multiplied when negative."""
    score = torch.gather(logits, 1, seen)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(1, seen, score)


def _forward_parameters(model: Any) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


@functools.cache
def _reserved_layer_class() -> type:
    """``ReservedLayer``, built on first use so that importing this module stays light."""
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A ``DynamicLayer`` that writes each step's keys/values into room reserved up front.

        ``DynamicLayer.update`` concatenates, copying the layer's whole cache every decoding
        step; here a step copies only its own position. ``keys``/``values`` stay views of the
        filled part, so whatever reads them (attention, ``get_seq_length``, masks) sees the
        tensors a ``DynamicLayer`` would hold.
        """

        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = capacity
            self.filled = 0
            self.key_room: torch.Tensor | None = None
            self.value_room: torch.Tensor | None = None

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            start, end = self.filled, self.filled + key_states.shape[-2]
            if self.key_room is None or end > self.key_room.shape[-2]:
                self._reserve(
                    key_states, value_states, key_states.shape[0], max(end, self.capacity)
                )
            self.key_room[:, :, start:end].copy_(key_states)  # type: ignore[index]
            self.value_room[:, :, start:end].copy_(value_states)  # type: ignore[index]
            self.filled = end
            self._expose()
            return self.keys, self.values  # type: ignore[return-value]

        def write(
            self, row: int, start: int, shape: tuple[int, int], keys: Any, values: Any
        ) -> None:
            """Prompt pass: one row's ``keys``/``values`` (heads, positions, dim) from column
            ``start`` of a batch of ``shape`` (rows, positions). The room is zeros elsewhere:
            masked padding whose zero values add exactly 0 to the attention."""
            batch, total = shape
            if self.key_room is None:
                self.filled = total
                self._reserve(keys[None], values[None], batch, max(total, self.capacity))
            self.key_room[row, :, start : start + keys.shape[-2]] = keys  # type: ignore[index]
            self.value_room[row, :, start : start + values.shape[-2]] = values  # type: ignore[index]
            self._expose()

        def _reserve(
            self, key_states: torch.Tensor, value_states: torch.Tensor, batch: int, size: int
        ) -> None:
            def room(old: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
                out = new.new_zeros((batch, new.shape[1], size, new.shape[-1]))
                if old is not None:
                    out[: old.shape[0], :, : self.filled] = old[:, :, : self.filled]
                return out

            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            self.key_room = room(self.key_room, key_states)
            self.value_room = room(self.value_room, value_states)

        def _expose(self) -> None:
            self.keys = self.key_room[:, :, : self.filled]  # type: ignore[index]
            self.values = self.value_room[:, :, : self.filled]  # type: ignore[index]

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.key_room is not None:
                self.key_room = self.key_room[indices]
                self.value_room = self.value_room[indices]  # type: ignore[index]
                self._expose()

        def drop_leading(self, columns: int) -> None:
            """Forget the first ``columns`` positions (padding for every remaining row)."""
            if self.key_room is not None:
                self.key_room = self.key_room[:, :, columns:]
                self.value_room = self.value_room[:, :, columns:]  # type: ignore[index]
                self.filled -= columns
                self._expose()

    return ReservedLayer


def _reserved_cache(model: Any, capacity: int) -> Any | None:
    """A ``DynamicCache`` whose layers reserve room for ``capacity`` positions, or None when the
    model has layers other than plain full attention (sliding windows...)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [_reserved_layer_class()(capacity) for _ in cache.layers]
    return cache


PREFILL_CALL_TOKENS = 64
"""The cost of one more forward call in the prompt pass, in padded tokens' worth of compute."""
COMPACT_EVERY = 8
"""Ended rows leave the batch once they are at least 1/COMPACT_EVERY of it."""


def prefill_groups(lengths: Sequence[int], overhead: int = PREFILL_CALL_TOKENS) -> list[list[int]]:
    """Rows grouped for the prompt pass: each group is padded only to its own longest prompt.

    Minimises padded tokens plus ``overhead`` tokens' worth per forward call (a dynamic
    programme over the rows sorted by length), since one pass over a whole batch padded to its
    longest prompt can cost more than all the decoding steps after it.

    >>> prefill_groups([40, 118, 38, 114, 39])
    [[1, 3], [0, 4, 2]]
    >>> prefill_groups([50, 50, 50])
    [[0, 1, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    best = [0] + [0] * n  # best[j]: cost of rows order[:j]
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        best[j], cut[j] = min(
            (best[i] + (j - i) * lengths[order[i]] + overhead, i) for i in range(j)
        )
    groups, j = [], n
    while j:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all rows share, leaving each row at least one of its own (the
    prompt pass needs each row's last position).

    >>> shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5, 6]])
    3
    >>> shared_prefix([[1, 2], [1, 2]])
    1
    """
    first, count = rows[0], min(map(len, rows)) - 1
    for k in range(count):
        if any(r[k] != first[k] for r in rows):
            return k
    return count


def _prefill(
    model: Any,
    input_ids: Any,
    mask: Any,
    positions: Any,
    capacity: int,
    extra: dict[str, Any],
) -> tuple[Any, Any]:
    """The prompt pass: last-position logits of every row, and the cache of the batch.

    The tokens every prompt starts with (the chat template's system turn) go through once and
    their keys/values are copied to every row; the rest of each prompt goes through in groups of
    similar length (``prefill_groups``), each padded to its own longest, after the shared part.
    Keys/values land in one left-padded cache, as a pass over the padded batch would leave them,
    at the same positions.
    """
    from transformers import DynamicCache

    cache = _reserved_cache(model, capacity)
    kw = _cache_kw(model)
    if cache is None:  # other layer types: one pass over the padded batch, as `generate` does
        cache = DynamicCache(config=model.config)
        out = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{kw: cache},
            **extra,
        )
        return out.logits[:, -1, :].float(), cache
    device = input_ids.device
    shape = (input_ids.shape[0], input_ids.shape[1])
    total = shape[1]
    lengths = [int(n) for n in mask.sum(1).tolist()]
    shared = shared_prefix([input_ids[r, total - n :].tolist() for r, n in enumerate(lengths)])
    if shared * (len(lengths) - 1) <= PREFILL_CALL_TOKENS:
        shared = 0
    prefix = None
    if shared:
        prefix = DynamicCache(config=model.config)
        start = total - lengths[0]
        model(
            input_ids=input_ids[:1, start : start + shared],
            attention_mask=mask.new_ones((1, shared)),
            position_ids=torch.arange(shared, device=device)[None],
            use_cache=True,
            **{kw: prefix},
            **extra,
        )
    rest = [n - shared for n in lengths]
    logits = None
    for group in prefill_groups(rest, PREFILL_CALL_TOKENS):
        rows = torch.tensor(group, device=device)
        width = max(rest[i] for i in group)
        own = torch.tensor([rest[i] for i in group], device=device)
        part_mask = (torch.arange(width, device=device)[None] >= width - own[:, None]).to(
            mask.dtype
        )
        part_positions = (shared + part_mask.long().cumsum(-1) - 1).masked_fill(part_mask == 0, 1)
        part = DynamicCache(config=model.config)
        if prefix is not None:
            layer: Any
            done: Any
            for layer, done in zip(part.layers, prefix.layers, strict=True):
                layer.lazy_initialization(done.keys, done.values)
                layer.keys = done.keys.expand(len(group), -1, -1, -1)
                layer.values = done.values.expand(len(group), -1, -1, -1)
            part_mask = torch.cat([part_mask.new_ones((len(group), shared)), part_mask], dim=1)
        out = model(
            input_ids=input_ids[rows, total - width :],
            attention_mask=part_mask,
            position_ids=part_positions,
            use_cache=True,
            **{kw: part},
            **extra,
        )
        last = out.logits[:, -1, :].float()
        if logits is None:
            logits = last.new_empty((shape[0], last.shape[-1]))
        logits[rows] = last
        for k, layer in enumerate(cache.layers):
            filled: Any = part.layers[k]
            for i, row in enumerate(group):
                own_keys = filled.keys[i, :, -rest[row] :]
                layer.write(
                    row, total - rest[row], shape, own_keys, filled.values[i, :, -rest[row] :]
                )
                if prefix is not None:
                    done = prefix.layers[k]
                    layer.write(row, total - lengths[row], shape, done.keys[0], done.values[0])
    return logits, cache


def _cache_kw(model: Any) -> str:
    # transformers 5 renames `past_key_values` to `cache`; the cache object is filled in place.
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def _drop_leading(layer: Any, columns: int) -> None:
    if hasattr(layer, "drop_leading"):
        layer.drop_leading(columns)
    else:
        layer.keys = layer.keys[:, :, columns:, :]
        layer.values = layer.values[:, :, columns:, :]


def greedy_compact(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    cfg: GenerationParams,
    stops: Sequence[int],
) -> list[list[int]]:
    """Greedy decoding of a left-padded batch; the new tokens of each row (up to and including
    its stop token, at most ``cfg.max_new_tokens``).

    The prompt pass runs in groups of similar length (no compute on most of the padding) into
    one cache with room reserved for the new tokens. Each step then feeds only the rows still
    generating: finished rows are removed from the batch and the KV cache once they are
    1/``COMPACT_EVERY`` of it (each removal copies the cache), and the leading
    columns that are padding for every remaining row are cut. Positions follow ``generate``
    (``attention_mask.cumsum - 1``) and padding stays masked, so each row sees the logits it
    would see in ``model.generate``.
    """
    device = input_ids.device
    n = input_ids.shape[0]
    mask = attention_mask.clone()
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as `generate` does
    accepted = _forward_parameters(model)
    kw = _cache_kw(model)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    logits, cache = _prefill(
        model, input_ids, mask, positions, input_ids.shape[1] + cfg.max_new_tokens, extra
    )
    next_position = positions[:, -1] + 1
    penalty = cfg.repetition_penalty
    # Tokens each row has seen, pads replaced by the row's last prompt token (penalising a token
    # twice is the same as once), for the repetition penalty.
    seen = torch.where(mask.bool(), input_ids, input_ids[:, -1:]) if penalty != 1.0 else None
    stop = torch.tensor(sorted(stops), dtype=torch.long, device=device)
    alive = torch.arange(n, device=device)  # batch row -> original row
    new: list[list[int]] = [[] for _ in range(n)]
    ended = torch.zeros(n, dtype=torch.bool, device=device)  # per batch row: stop token seen
    for step in range(cfg.max_new_tokens):
        if seen is not None:
            logits = _penalise_repeats(logits, seen, penalty)
        tokens = logits.argmax(dim=-1)
        for row, token in zip(alive.tolist(), tokens.tolist(), strict=True):
            new[row].append(token)  # past a row's stop token: cut by `trim_at_stop`
        if step + 1 == cfg.max_new_tokens:
            break
        ended |= torch.isin(tokens, stop)
        done = int(ended.sum())
        if done == len(ended):
            break
        # Removing rows copies the whole cache: done once a few rows have ended, not per row.
        if done and done * COMPACT_EVERY >= len(ended):
            keep = torch.nonzero(~ended).squeeze(1)
            ended = ended[keep]
            alive, tokens, mask = alive[keep], tokens[keep], mask[keep]
            next_position = next_position[keep]
            seen = seen[keep] if seen is not None else None
            cache.batch_select_indices(keep)
            # Columns that are padding in every remaining row carry nothing: cut them.
            lead = int((mask.sum(0) == 0).long().cumprod(0).sum())
            if lead:
                mask = mask[:, lead:]
                for layer in cache.layers:
                    _drop_leading(layer, lead)
        if seen is not None:
            seen = torch.cat([seen, tokens[:, None]], dim=1)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=next_position[:, None],
            use_cache=True,
            **{kw: cache},
        )
        logits = out.logits[:, -1, :].float()
        next_position = next_position + 1
    return new


def generate_vllm(
    path: Any, tokenizer: Any, prompts: Sequence[str], cfg: GenerationParams
) -> list[Generation]:
    """Generate with vLLM (``evaluate.engine: vllm``; a GPU machine with vllm installed).

    Prompts go in as token ids, encoded as the hf engine does (no special tokens added).
    """
    from sftops.errors import SftopsError

    try:
        import vllm
    except ImportError as exc:
        raise SftopsError(
            "evaluate.engine is 'vllm' but the vllm package is not installed "
            "(install it on a GPU machine, or set evaluate.engine: hf)"
        ) from exc
    if cfg.strategy == "beam":
        raise SftopsError("evaluate.engine 'vllm' does not do beam search: use engine hf")
    greedy = cfg.strategy == "greedy"
    sampling = vllm.SamplingParams(
        max_tokens=cfg.max_new_tokens,
        stop_token_ids=stop_token_ids(tokenizer),
        repetition_penalty=cfg.repetition_penalty,
        temperature=0.0 if greedy else cfg.temperature,
        top_p=1.0 if greedy else cfg.top_p,
        top_k=-1 if greedy or cfg.top_k == 0 else cfg.top_k,
        seed=cfg.seed,
    )
    llm = vllm.LLM(model=str(path), seed=cfg.seed)
    inputs = [
        {"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts
    ]
    out = []
    for result in llm.generate(inputs, sampling):
        first = result.outputs[0]
        ended = first.finish_reason == "stop"
        out.append(
            Generation(
                text=first.text.strip(),
                new_tokens=len(first.token_ids),
                hit_max_new_tokens=not ended,
            )
        )
    return out


def one_at_a_time(
    model: Any, tokenizer: Any, prompts: Sequence[str], cfg: GenerationParams
) -> tuple[list[Generation], float]:
    """The reference: a plain `model.generate` call per prompt (for the benchmark and tests)."""
    single = cfg.model_copy(update={"batch_size": 1})
    started = time.perf_counter()
    results = [generate(model, tokenizer, [p], single, compact=False)[0] for p in prompts]
    return results, time.perf_counter() - started
