"""Causal-LM SFT, a loop you can read top to bottom.

load model -> encode rows with the shared chat template (loss on assistant tokens only) ->
pack -> AdamW + warmup/cosine -> accumulate with token-level normalisation -> clip -> step ->
evaluate / early-stop / checkpoint -> write the best model as safetensors.

A checkpoint holds weights, optimizer, scheduler, RNG states, the data position and the params,
so `--resume` continues exactly (same loss curve as an uninterrupted run). Under `torchrun`
each process takes every world_size-th micro-batch and DDP averages gradients.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sftops.config import Params, TrainParams
from sftops.errors import SftopsError
from sftops.modeling.data import (
    IGNORE_INDEX,
    Example,
    Row,
    collate,
    epoch_batches,
    pack_examples,
    single_rows,
)

log = logging.getLogger("sftops.train")
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    tokens_seen: int = 0  # real (non-padding) input tokens processed by this process
    best_val_loss: float = math.inf
    best_step: int = 0
    evals_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


def pick_device(cfg: TrainParams) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local)
    return torch.device("cpu")


def autocast_dtype(cfg: TrainParams, device: torch.device) -> torch.dtype | None:
    if cfg.precision == "bf16" or (
        cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    ):
        return torch.bfloat16
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------ data


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


# ------------------------------------------------------------------------------ model


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
        layers = _decoder_layers(model)
        for p in model.parameters():
            p.requires_grad = False
        for layer in layers[-cfg.trainable_layers :]:
            for p in layer.parameters():
                p.requires_grad = True
    return model


def _decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
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


# ------------------------------------------------------------------------------ loss


def token_loss_sum(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    reference: torch.nn.Module | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over target tokens (+ optional KL to the base model)
    and the number of target tokens. The caller divides by the step's total target count,
    which keeps the loss per token exact across micro-batches of different sizes."""
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    loss = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    if reference is not None and kl_coef > 0:
        with torch.no_grad():
            ref_logits = reference(**inputs, use_cache=False).logits[:, :-1].float()
        logp = F.log_softmax(logits[mask], dim=-1)
        ref_logp = F.log_softmax(ref_logits[mask], dim=-1)
        loss = loss + kl_coef * (logp.exp() * (logp - ref_logp)).sum()
    return loss, int(mask.sum())


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
        with _autocast(device, amp):
            loss, n = token_loss_sum(model, batch)
        total += float(loss)
        count += n
    model.train(was_training)
    return total / max(1, count)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


# ------------------------------------------------------------------------------ checkpoints


def save_model(model: torch.nn.Module, tokenizer: Any, target: Path, extra: dict[str, Any]) -> None:
    """Write weights (safetensors), tokenizer and JSON metadata to a temp folder, then rename,
    so a folder that exists is always complete."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    unwrapped: Any = getattr(model, "module", model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
    if hasattr(unwrapped, "merge_and_unload") and extra.get("merge_lora", False):
        unwrapped = unwrapped.merge_and_unload()
    unwrapped.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for name, data in extra.get("json", {}).items():
        (tmp / name).write_text(json.dumps(data, indent=2, default=str))
    for name, data in extra.get("torch", {}).items():
        torch.save(data, tmp / name)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def latest_checkpoint(folder: Path) -> Path | None:
    candidates = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [p for p in candidates if (p / STATE_FILE).exists()]
    return complete[-1] if complete else None


# ------------------------------------------------------------------------------ the loop


@dataclass
class TrainResult:
    model_dir: str
    base_val_loss: float
    final_val_loss: float
    best_val_loss: float
    best_step: int
    steps: int
    tokens: int
    seconds: float
    tokens_per_second: float
    encoding: dict[str, int]
    history: list[dict[str, float]]
    stopped_early: bool

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("history")
        return out


def train(
    params: Params,
    train_table: pd.DataFrame,
    val_table: pd.DataFrame,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    """Fine-tune ``params.train.base_model``; ``on_step`` is called after every optimizer step
    (progress reporting to an orchestrator; tests use it to simulate a crash)."""
    from sftops.modeling.models import (
        load_causal_lm,
        load_tokenizer,
        model_context_length,
        resolve_model_path,
    )

    cfg, paths = params.train, params.paths
    device = pick_device(cfg)
    dist_info = setup_distributed(device)
    amp = autocast_dtype(cfg, device)
    seed_everything(cfg.seed)

    # 1. model and tokenizer, with the chat template shared by evaluate and serve
    base_path = resolve_model_path(cfg.base_model, paths.cache_dir)
    tokenizer = load_tokenizer(base_path)
    model: Any = load_causal_lm(base_path, device=str(device), tokenizer=tokenizer)
    context = model_context_length(model)
    if cfg.max_length > context:
        raise SftopsError(
            f"must be ≤ the model's context length {context}",
            file="params.yaml",
            key="train.max_length",
        )
    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    reference = None
    if cfg.kl_coef > 0:
        reference = load_causal_lm(base_path, device=str(device), tokenizer=tokenizer)
        for p in reference.parameters():
            p.requires_grad = False
    model = apply_method(model, cfg)
    if cfg.grad_checkpointing:
        model.gradient_checkpointing_enable()
    pad_id = tokenizer.pad_token_id

    # 2. data: encode, pack, shard
    if cfg.max_train_rows:
        train_table = train_table.head(cfg.max_train_rows)
    train_examples, encoding = encode_rows(train_table, tokenizer, cfg.max_length)
    val_table = val_table.head(cfg.max_eval_rows) if cfg.max_eval_rows else val_table
    val_examples, _ = encode_rows(val_table, tokenizer, cfg.max_length)
    if not train_examples:
        raise SftopsError("no trainable rows (empty train split or every answer truncated)")
    rows = build_rows(train_examples, cfg)
    val_rows = build_rows(val_examples, cfg)
    batches_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // (cfg.grad_accum * dist_info.world_size))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    warmup = int(cfg.warmup_ratio * total_steps)

    # 3. optimizer, schedule, state (fresh or resumed)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup, cfg.schedule)
    )
    state = TrainState()
    checkpoints = Path(paths.checkpoints_dir)
    resumed_from = latest_checkpoint(checkpoints) if resume else None
    if resume and resumed_from is None:
        log.warning("--resume: no complete checkpoint in %s, starting fresh", checkpoints)
    if resumed_from is not None:
        saved = torch.load(resumed_from / STATE_FILE, weights_only=False)
        _load_weights(model, resumed_from)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = TrainState(**saved["state"])
        set_rng_state(saved["rng"])
        log.info("resumed from %s (step %d)", resumed_from, state.step)
    elif dist_info.is_main:
        shutil.rmtree(checkpoints, ignore_errors=True)

    ddp_model: torch.nn.Module = model
    if dist_info.world_size > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile and device.type == "cuda":
        ddp_model = torch.compile(ddp_model)  # type: ignore[assignment]

    def evaluate() -> float:
        return mean_loss(model, val_rows, cfg.batch_size, pad_id, cfg.packing, device, amp)

    base_val_loss = state.history[0]["val_loss"] if state.history else evaluate()
    if not state.history:
        state.history.append({"step": 0, "val_loss": base_val_loss, "train_loss": math.nan})
    log.info(
        "base model validation loss %.4f; %d steps of %d micro-batches",
        base_val_loss,
        total_steps,
        cfg.grad_accum,
    )

    def save_checkpoint() -> None:
        if not dist_info.is_main:
            return
        save_model(
            model,
            tokenizer,
            checkpoints / f"step-{state.step:06d}",
            {
                "json": {"train_params.json": params.to_dict()},
                "torch": {
                    STATE_FILE: {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "state": asdict(state),
                        "rng": rng_state(),
                    }
                },
            },
        )
        for old in sorted(checkpoints.glob("step-*"))[:-2]:  # keep the last two
            shutil.rmtree(old, ignore_errors=True)

    bar = _progress_bar(total_steps, state.step, progress and dist_info.is_main)
    started, tokens_at_start = time.perf_counter(), state.tokens_seen
    stopped_early = False
    model.train()
    while state.step < total_steps and not stopped_early:
        batches = epoch_batches(len(rows), cfg.batch_size, cfg.seed, state.epoch)
        group = cfg.grad_accum * dist_info.world_size
        while state.batch_in_epoch + group <= len(batches) and state.step < total_steps:
            # 4. one optimizer step: grad_accum micro-batches on this rank
            step_batches = batches[state.batch_in_epoch : state.batch_in_epoch + group]
            mine = step_batches[dist_info.rank :: dist_info.world_size]
            micro = [collate([rows[i] for i in b], pad_id, cfg.packing) for b in mine]
            # real (non-padding) tokens this rank processes; the throughput figures use these
            state.tokens_seen += sum(len(rows[i].input_ids) for b in mine for i in b)
            n_targets = torch.tensor(
                sum(int((m["labels"][:, 1:] != IGNORE_INDEX).sum()) for m in micro)
            )
            if dist_info.world_size > 1:
                torch.distributed.all_reduce(n_targets)
            step_loss = 0.0
            for k, batch in enumerate(micro):
                batch = {key: v.to(device) for key, v in batch.items()}
                sync = k == len(micro) - 1 or dist_info.world_size == 1
                context_manager = nullcontext() if sync else ddp_model.no_sync()  # type: ignore[operator]
                try:
                    with context_manager, _autocast(device, amp):
                        loss_sum, _ = token_loss_sum(ddp_model, batch, reference, cfg.kl_coef)
                        # DDP averages gradients over ranks: scale to the global mean
                        loss = loss_sum * dist_info.world_size / n_targets.to(device)
                    loss.backward()
                except (torch.OutOfMemoryError, MemoryError):
                    raise SftopsError(
                        f"out of {device.type} memory at {cfg.batch_size} rows x "
                        f"{cfg.max_length} tokens per micro-batch: lower train.batch_size "
                        "(raise grad_accum to keep the batch) or max_length, or set "
                        "train.grad_checkpointing=true",
                        file="params.yaml",
                        key="train.batch_size",
                    ) from None
                step_loss += float(loss_sum.detach())
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch_in_epoch += group
            if dist_info.world_size > 1:  # every rank logs the global mean
                summed = torch.tensor(step_loss, dtype=torch.float64)
                torch.distributed.all_reduce(summed)
                step_loss = float(summed)
            train_loss = step_loss / max(1, int(n_targets))
            record: dict[str, float] = {
                "step": state.step,
                "train_loss": train_loss,
                "lr": float(scheduler.get_last_lr()[0]),
                "grad_norm": float(grad_norm),
            }

            # 5. evaluate, early-stop, checkpoint
            if state.step % cfg.eval_every == 0 or state.step == total_steps:
                val_loss = evaluate()
                record["val_loss"] = val_loss
                if val_loss < state.best_val_loss - 1e-4:
                    state.best_val_loss, state.best_step = val_loss, state.step
                    state.evals_without_improvement = 0
                    if dist_info.is_main:
                        save_model(model, tokenizer, checkpoints / "best", {})
                else:
                    state.evals_without_improvement += 1
                patience = cfg.early_stopping_patience
                if patience and state.evals_without_improvement >= patience:
                    stopped_early = True
            state.history.append(record)
            if state.step % cfg.save_every == 0 or state.step == total_steps or stopped_early:
                save_checkpoint()
            elapsed = time.perf_counter() - started
            bar.set_postfix(
                loss=f"{train_loss:.3f}",
                tok_s=f"{(state.tokens_seen - tokens_at_start) / elapsed:.0f}",
            )
            bar.update(1)
            if on_step is not None:
                on_step(state)
            if stopped_early:
                break
        if state.batch_in_epoch + group > len(batches):
            state.epoch += 1
            state.batch_in_epoch = 0
    bar.close()

    seconds = time.perf_counter() - started
    final_val_loss = next(
        (h["val_loss"] for h in reversed(state.history) if "val_loss" in h), base_val_loss
    )
    model_dir = Path(paths.model_dir)
    result = TrainResult(
        model_dir=str(model_dir),
        base_val_loss=base_val_loss,
        final_val_loss=final_val_loss,
        best_val_loss=min(state.best_val_loss, final_val_loss),
        best_step=state.best_step,
        steps=state.step,
        tokens=state.tokens_seen,
        seconds=seconds,
        tokens_per_second=(state.tokens_seen - tokens_at_start) / max(seconds, 1e-9),
        encoding=encoding,
        history=state.history,
        stopped_early=stopped_early,
    )
    if dist_info.is_main:
        best = checkpoints / "best"
        if best.exists():
            _load_weights(model, best)
        save_model(
            model,
            tokenizer,
            model_dir,
            {
                "merge_lora": True,
                "json": {
                    "train_params.json": params.to_dict(),
                    "train_metrics.json": result.summary(),
                },
            },
        )
    return result


def _load_weights(model: torch.nn.Module, folder: Path) -> None:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    target = getattr(model, "module", model)
    if (folder / "adapter_model.safetensors").exists():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(target, load_file(folder / "adapter_model.safetensors"))
        return
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    missing, unexpected = target.load_state_dict(state, strict=False)
    # Tied embeddings (lm_head = embed_tokens) are saved once; anything else is a real mismatch.
    real_missing = [m for m in missing if "lm_head" not in m]
    if real_missing or unexpected:
        raise SftopsError(
            f"checkpoint does not match the model: {real_missing[:3] or unexpected[:3]}",
            file=folder,
        )


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step")


def run_train(params: Params, resume: bool = False) -> dict[str, Any]:
    """The edge: read the (augmented) train split and the validation split, train, write the
    model folder, metrics JSON and the loss curve."""
    from sftops.io import read_table, write_json
    from sftops.plots import loss_curve

    paths = params.paths
    train_path = paths.train_aug if params.train.use_augmented else paths.split("train")
    result = train(params, read_table(train_path), read_table(paths.split("validation")), resume)
    summary = result.summary()
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes reports
        return summary
    write_json({**summary, "history": result.history}, paths.report("train"))
    loss_curve(
        result.history,
        Path(paths.reports_dir) / "train_loss.png",
        title=f"SFT of {params.train.base_model}",
    )
    return summary
