"""What is trained and how: full / LoRA / last-N-layers, dropout, AdamW groups, the learning-rate
schedule, FSDP sharding by decoder layer."""

from __future__ import annotations

import math
from typing import Any

import torch

from sftops.config import TrainParams
from sftops.errors import SftopsError


def apply_method(model: torch.nn.Module, cfg: TrainParams) -> torch.nn.Module:
    """Full fine-tune, LoRA adapters (peft), or freeze all but the last N layers."""
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules or "all-linear",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora)
    if cfg.method == "freeze":
        layers = decoder_layers(model)
        for p in model.parameters():
            p.requires_grad = False
        for layer in layers[-cfg.trainable_layers :]:
            for p in layer.parameters():
                p.requires_grad = True
    return model


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    for name in ("model.layers", "transformer.h", "gpt_neox.layers"):
        node: Any = model
        try:
            for part in name.split("."):
                node = getattr(node, part)
        except AttributeError:
            continue
        return node
    raise SftopsError("train.method=freeze: cannot find the decoder layers of this model")


def set_dropout(model: torch.nn.Module, p: float) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    config = getattr(model, "config", None)
    for key in ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop"):
        if config is not None and hasattr(config, key):
            setattr(config, key, p)


def make_optimizer(model: torch.nn.Module, cfg: TrainParams) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Learning-rate multiplier: linear warmup, then cosine / linear decay to 10% / constant.

    >>> [round(lr_factor(s, 10, 2, "cosine"), 2) for s in (0, 1, 2, 10)]
    [0.5, 1.0, 1.0, 0.1]
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - 0.9 * progress
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def shard_fsdp(
    runner: torch.nn.Module,
    model: torch.nn.Module,
    device: torch.device,
    amp: torch.dtype | None,
    cfg: TrainParams,
) -> None:
    """FSDP2 (``fully_shard``): each decoder layer is a unit, the loss module the root (its
    forward gathers embeddings, final norm and LM head, then the layers one at a time)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if cfg.method == "lora":
        raise SftopsError(
            "FSDP is supported with method full or freeze (LoRA adapters are small: use ddp)",
            file="params.yaml",
            key="train.distributed",
        )
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    options: dict[str, Any] = {"mesh": mesh}
    if amp is not None and device.type == "cuda":
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=amp, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, **options)
    fully_shard(runner, **options)
