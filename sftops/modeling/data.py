"""Turning table rows into training batches: encoding with the chat template, packing,
padding, epoch order.

Pure functions over token-id lists (no model, no I/O), so they are tested on their own;
:func:`encode_rows` needs only a tokenizer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from sftops.config import TrainParams

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]


@dataclass(frozen=True)
class Row:
    """One training row: a single example, or several packed end to end.

    ``position_ids`` restart at 0 at every example boundary, which is how the attention
    implementation knows not to attend across examples (transformers builds a block-diagonal
    causal mask from position ids when no attention mask is given).
    """

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    @property
    def n_targets(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def single_rows(examples: list[Example]) -> list[Row]:
    return [Row(e.input_ids, e.labels, list(range(len(e.input_ids)))) for e in examples]


def pack_examples(examples: list[Example], max_length: int) -> list[Row]:
    """First-fit-decreasing packing into rows of at most ``max_length`` tokens (deterministic).

    >>> rows = pack_examples([Example([1, 2, 3], [1, 2, 3]), Example([4, 5], [-100, 5]),
    ...                       Example([6], [6])], max_length=4)
    >>> [(r.input_ids, r.position_ids) for r in rows]
    [([1, 2, 3, 6], [0, 1, 2, 0]), ([4, 5], [0, 1])]
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    bins: list[list[int]] = []
    space: list[int] = []
    for index in order:
        size = len(examples[index].input_ids)
        for b, free in enumerate(space):
            if size <= free:
                bins[b].append(index)
                space[b] -= size
                break
        else:
            bins.append([index])
            space.append(max_length - size)
    rows = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for index in members:
            ids += examples[index].input_ids
            labels += examples[index].labels
            positions += range(len(examples[index].input_ids))
        rows.append(Row(ids, labels, positions))
    return rows


def epoch_batches(n_rows: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Row indices of each micro-batch of an epoch: a seeded shuffle, so a resumed run sees the
    same order (depends on seed and epoch only, never on global RNG state).

    >>> epoch_batches(5, 2, seed=0, epoch=0) == epoch_batches(5, 2, seed=0, epoch=0)
    True
    >>> sorted(i for b in epoch_batches(5, 2, seed=0, epoch=1) for i in b)
    [0, 1, 2, 3, 4]
    """
    order = list(range(n_rows))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_rows, batch_size)]


def collate(
    rows: list[Row], pad_id: int, packed: bool, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Right-pad rows into tensors (to the longest row, or to ``pad_to`` tokens: one shape for
    every batch, so ``torch.compile`` compiles once).

    Packed rows carry ``position_ids`` and no attention mask (padding forms its own block at
    the end, never attended by real tokens under the causal mask); unpacked rows carry an
    attention mask instead.
    """
    width = max(max(len(r.input_ids) for r in rows), pad_to or 0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n] = torch.tensor(row.input_ids)
        labels[i, :n] = torch.tensor(row.labels)
        positions[i, :n] = torch.tensor(row.position_ids)
        positions[i, n:] = torch.arange(width - n)
        mask[i, :n] = 1
    if packed:
        return {"input_ids": ids, "labels": labels, "position_ids": positions}
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def encode_rows(
    table: pd.DataFrame, tokenizer: Any, max_length: int
) -> tuple[list[Example], dict[str, int]]:
    """Encode with the shared chat template; rows with no answer token left are dropped."""
    from sftops.modeling.formatting import encode_conversation, row_to_messages

    examples, truncated, dropped = [], 0, 0
    for row in table.to_dict(orient="records"):
        encoded = encode_conversation(tokenizer, row_to_messages(row), max_length)
        truncated += encoded.truncated
        if all(label == IGNORE_INDEX for label in encoded.labels):
            dropped += 1
            continue
        examples.append(Example(encoded.input_ids, encoded.labels))
    return examples, {"rows": len(table), "truncated": truncated, "dropped_no_answer": dropped}


def build_rows(examples: list[Example], cfg: TrainParams) -> list[Row]:
    return pack_examples(examples, cfg.max_length) if cfg.packing else single_rows(examples)
