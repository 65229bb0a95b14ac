"""The training objective: next-token cross-entropy on assistant tokens (+ optional KL to the
base model), summed per batch so the loop can normalise by the step's target-token count."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sftops.modeling.data import IGNORE_INDEX, Row, collate
from sftops.modeling.hardware import amp_context


class CausalLMLoss(torch.nn.Module):
    """Summed next-token cross-entropy over the target positions of a batch.

    The decoder runs on every position, but the LM head (a vocabulary-wide matmul and softmax:
    for SmolLM2-135M a fifth of the forward FLOPs) runs only where the next token has a label,
    so prompts and padding cost no logits. This module is what DDP / FSDP / ``torch.compile``
    wrap, so the shortcut holds under every launcher. Models whose logits are post-processed
    (soft-capping, logit scales) or that expose no decoder/head split take the plain path.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        reference: torch.nn.Module | None = None,
        kl_coef: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        # a plain attribute, not a submodule: DDP/FSDP must neither sync nor shard the frozen base
        self.__dict__["reference"] = reference if kl_coef > 0 else None
        self.kl_coef = kl_coef

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        targets = labels[:, 1:]
        where = (targets != IGNORE_INDEX).reshape(-1).nonzero().squeeze(1)
        goal = targets.reshape(-1).index_select(0, where)
        logits = _target_logits(self.model, inputs, where).float()
        loss = F.cross_entropy(logits, goal, reduction="sum")
        reference = self.__dict__["reference"]
        if reference is not None:
            with torch.no_grad():
                ref_logits = _target_logits(reference, inputs, where).float()
            logp = F.log_softmax(logits, dim=-1)
            ref_logp = F.log_softmax(ref_logits, dim=-1)
            loss = loss + self.kl_coef * (logp.exp() * (logp - ref_logp)).sum()
        return loss


_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _head_split(model: torch.nn.Module) -> tuple[Any, Any] | None:
    """(decoder, lm_head) of a causal LM (through a peft wrapper), or None when the logits are
    more than ``lm_head(last hidden state)``."""
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
    config = getattr(base, "config", None)
    if config is None or any(getattr(config, key, None) for key in _LOGIT_POSTPROCESSING):
        return None
    get_decoder = getattr(base, "get_decoder", None)
    get_head = getattr(base, "get_output_embeddings", None)
    decoder = get_decoder() if callable(get_decoder) else None
    head = get_head() if callable(get_head) else None
    if decoder is None or head is None or decoder is base:
        return None
    return decoder, head


def _target_logits(
    model: torch.nn.Module, inputs: dict[str, Any], where: torch.Tensor
) -> torch.Tensor:
    """Logits predicting the next token at the flat (row-major, last position dropped)
    indices ``where``."""
    split = _head_split(model)
    if split is None:
        logits = model(**inputs).logits[:, :-1]
        return logits.reshape(-1, logits.size(-1)).index_select(0, where)
    decoder, head = split
    hidden = decoder(**inputs).last_hidden_state[:, :-1]
    return head(hidden.reshape(-1, hidden.size(-1)).index_select(0, where))


def _loss_module(model: torch.nn.Module) -> bool:
    inner: Any = getattr(model, "_orig_mod", model)
    inner = getattr(inner, "module", inner)
    return isinstance(getattr(inner, "_orig_mod", inner), CausalLMLoss)


def token_loss_sum(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    reference: torch.nn.Module | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over target tokens (+ optional KL to the base model)
    and the number of target tokens. The caller divides by the step's total target count,
    which keeps the loss per token exact across micro-batches of different sizes.

    ``model`` is a causal LM or a (wrapped: DDP, compiled) :class:`CausalLMLoss`."""
    runner = model if _loss_module(model) else CausalLMLoss(model, reference, kl_coef)
    loss = runner(**batch)
    return loss, int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


@torch.no_grad()
def mean_loss(
    model: torch.nn.Module,
    rows: list[Row],
    batch_size: int,
    pad_id: int,
    packed: bool,
    device: torch.device,
    amp: torch.dtype | None,
) -> float:
    """Mean per-token loss over rows (the held-out metric: lower is better)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start : start + batch_size], pad_id, packed)
        batch = {k: v.to(device) for k, v in batch.items()}
        with amp_context(device, amp):
            loss, n = token_loss_sum(model, batch)
        total += float(loss)
        count += n
    model.train(was_training)
    return total / max(1, count)


@torch.no_grad()
def row_mean_losses(
    model: torch.nn.Module, rows: list[Row], batch_size: int, pad_id: int, device: torch.device
) -> list[float]:
    """Mean per-token loss of each (unpacked) row: :func:`mean_loss` row by row, in batches."""
    was_training = model.training
    model.eval()
    out: list[float] = []
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start : start + batch_size], pad_id, packed=False)
        batch = {k: v.to(device) for k, v in batch.items()}
        targets = batch["labels"][:, 1:]
        where = (targets != IGNORE_INDEX).reshape(-1).nonzero().squeeze(1)
        inputs = {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "use_cache": False,
        }
        logits = _target_logits(model, inputs, where).float()
        nll = F.cross_entropy(logits, targets.reshape(-1).index_select(0, where), reduction="none")
        row_of = torch.div(where, targets.size(1), rounding_mode="floor")
        sums = torch.zeros(len(targets), device=nll.device).index_add_(0, row_of, nll)
        counts = (targets != IGNORE_INDEX).sum(dim=1).clamp(min=1)
        out.extend((sums / counts).tolist())
    model.train(was_training)
    return out
