"""Causal-LM SFT, a loop you can read top to bottom.

load model -> encode rows with the shared chat template (loss on assistant tokens only) ->
pack -> AdamW + warmup/cosine -> accumulate with token-level normalisation -> clip -> step ->
evaluate / early-stop / checkpoint -> write the best model as safetensors.

A checkpoint holds weights, optimizer, scheduler, RNG states, the data position and the params,
so `--resume` continues exactly (same loss curve as an uninterrupted run). Under `torchrun`
each process takes every world_size-th micro-batch and DDP averages gradients.

The parts the loop calls live beside it: :mod:`~sftops.modeling.data` (rows -> examples ->
packed rows -> batches), :mod:`~sftops.modeling.loss` (the objective),
:mod:`~sftops.modeling.recipe` (full / LoRA / freeze, optimizer, schedule, FSDP),
:mod:`~sftops.modeling.checkpoint` (save / resume, trainer and RNG state) and
:mod:`~sftops.modeling.hardware` (device, process group, autocast).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.modeling.checkpoint import (
    STATE_FILE,
    TrainState,
    full_model_state,
    full_optimizer_state,
    latest_checkpoint,
    load_optimizer,
    load_weights,
    rng_state,
    save_model,
    seed_everything,
    set_rng_state,
)
from sftops.modeling.data import IGNORE_INDEX, build_rows, collate, encode_rows, epoch_batches
from sftops.modeling.hardware import (
    agree,
    amp_context,
    autocast_dtype,
    pick_device,
    setup_distributed,
)
from sftops.modeling.loss import CausalLMLoss, mean_loss, token_loss_sum
from sftops.modeling.recipe import (
    apply_method,
    lr_factor,
    make_optimizer,
    set_dropout,
    shard_fsdp,
)

log = logging.getLogger("sftops.train")


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
    stopped_on_time: bool = False

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
    # With a time budget the schedule's horizon (and the warmup, its warmup_ratio share) is
    # re-estimated each step from the elapsed share of max_seconds, so the decay ends when the
    # time does, whatever the CPU's speed; 20 steps is the guess before the first step.
    horizon = [min(total_steps, 20) if cfg.max_seconds else total_steps]

    def schedule(step: int) -> float:
        warmup = int(cfg.warmup_ratio * horizon[0])
        return lr_factor(step, horizon[0], warmup, cfg.schedule)

    # 3. the loss module (DDP / FSDP / compile wrap it, so the LM head runs on target positions
    # only), then optimizer, schedule, state (fresh or resumed)
    runner: torch.nn.Module = CausalLMLoss(model, reference, cfg.kl_coef)
    fsdp = dist_info.world_size > 1 and cfg.distributed == "fsdp"
    if fsdp:
        shard_fsdp(runner, model, device, amp, cfg)  # before the optimizer: it swaps parameters
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state = TrainState()
    checkpoints = Path(paths.checkpoints_dir)
    resumed_from = latest_checkpoint(checkpoints) if resume else None
    if resume and resumed_from is None:
        log.warning("--resume: no complete checkpoint in %s, starting fresh", checkpoints)
    if resumed_from is not None:
        saved = torch.load(resumed_from / STATE_FILE, weights_only=True)
        load_weights(model, resumed_from, fsdp)
        load_optimizer(model, optimizer, saved["optimizer"], fsdp)
        scheduler.load_state_dict(saved["scheduler"])
        state = TrainState(**saved["state"])
        set_rng_state(saved["rng"])
        log.info("resumed from %s (step %d)", resumed_from, state.step)
    elif dist_info.is_main:  # a fresh start: only the step folders (the folder may hold notes)
        for stale in checkpoints.glob("step-*"):
            shutil.rmtree(stale, ignore_errors=True)

    ddp_model: torch.nn.Module = runner
    if dist_info.world_size > 1 and not fsdp:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        ddp_model = torch.compile(ddp_model)  # type: ignore[assignment]
    # sharded parameters are gathered by the FSDP root's hooks: evaluate through it
    eval_module = runner if fsdp else model

    def evaluate() -> float:
        return mean_loss(eval_module, val_rows, cfg.batch_size, pad_id, cfg.packing, device, amp)

    def full_weights() -> dict[str, torch.Tensor] | None:
        """Under FSDP every rank takes part in gathering the weights (rank 0 gets them)."""
        return full_model_state(model) if fsdp else None

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
        weights = full_weights()
        optimizer_state = full_optimizer_state(model, optimizer) if fsdp else None
        if not dist_info.is_main:
            return
        save_model(
            model,
            tokenizer,
            checkpoints / f"step-{state.step:06d}",
            {
                "state_dict": weights,
                "json": {"train_params.json": params.to_dict()},
                "torch": {
                    STATE_FILE: {
                        "optimizer": optimizer_state or optimizer.state_dict(),
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
    # a resumed run whose budget is spent does nothing more (ranks load the same state)
    out_of_time = bool(cfg.max_seconds) and state.seconds >= (cfg.max_seconds or 0.0)
    accounted = 0.0  # loop seconds already added to state.seconds
    model.train()
    while state.step < total_steps and not (stopped_early or out_of_time):
        batches = epoch_batches(len(rows), cfg.batch_size, cfg.seed, state.epoch)
        group = cfg.grad_accum * dist_info.world_size
        while (
            state.batch_in_epoch + group <= len(batches)
            and state.step < total_steps
            and not out_of_time
        ):
            # 4. one optimizer step: grad_accum micro-batches on this rank
            step_batches = batches[state.batch_in_epoch : state.batch_in_epoch + group]
            mine = step_batches[dist_info.rank :: dist_info.world_size]
            fixed = cfg.max_length if cfg.compile else None
            micro = [collate([rows[i] for i in b], pad_id, cfg.packing, fixed) for b in mine]
            # real (non-padding) tokens this rank processes; the throughput figures use these
            state.tokens_seen += sum(len(rows[i].input_ids) for b in mine for i in b)
            # collectives run on the device: NCCL takes no CPU tensors
            n_targets = torch.tensor(
                sum(int((m["labels"][:, 1:] != IGNORE_INDEX).sum()) for m in micro), device=device
            )
            if dist_info.world_size > 1:
                torch.distributed.all_reduce(n_targets)
            step_loss = 0.0
            for k, batch in enumerate(micro):
                batch = {key: v.to(device) for key, v in batch.items()}
                sync = k == len(micro) - 1 or dist_info.world_size == 1
                context_manager = nullcontext() if sync else ddp_model.no_sync()  # type: ignore[operator]
                try:
                    with context_manager, amp_context(device, amp):
                        loss_sum, _ = token_loss_sum(ddp_model, batch, reference, cfg.kl_coef)
                        # DDP averages gradients over ranks: scale to the global mean
                        loss = loss_sum * dist_info.world_size / n_targets
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
            out_of_time = False
            used = state.seconds + time.perf_counter() - started - accounted
            if cfg.max_seconds:
                out_of_time = agree(used >= cfg.max_seconds, dist_info, device)
                estimate = math.ceil((state.step + 1) * cfg.max_seconds / max(used, 1e-9))
                horizon[0] = max(state.step + 1, min(total_steps, estimate))
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch_in_epoch += group
            if dist_info.world_size > 1:  # every rank logs the global mean
                summed = torch.tensor(step_loss, dtype=torch.float64, device=device)
                torch.distributed.all_reduce(summed)
                step_loss = float(summed)
            train_loss = step_loss / max(1, int(n_targets))
            record: dict[str, float] = {
                "step": state.step,
                "train_loss": train_loss,
                "lr": float(scheduler.get_last_lr()[0]),
                "grad_norm": float(grad_norm),
                "seconds": used,  # training wall time up to this step, before its evaluation
            }

            # 5. evaluate, early-stop, checkpoint
            last = state.step == total_steps or out_of_time
            if state.step % cfg.eval_every == 0 or last:
                val_loss = evaluate()
                record["val_loss"] = val_loss
                if val_loss < state.best_val_loss - 1e-4:
                    state.best_val_loss, state.best_step = val_loss, state.step
                    state.evals_without_improvement = 0
                    weights = full_weights()
                    if dist_info.is_main:
                        save_model(model, tokenizer, checkpoints / "best", {"state_dict": weights})
                else:
                    state.evals_without_improvement += 1
                patience = cfg.early_stopping_patience
                if patience and state.evals_without_improvement >= patience:
                    stopped_early = True
            state.history.append(record)
            state.seconds += time.perf_counter() - started - accounted
            accounted = time.perf_counter() - started
            if state.step % cfg.save_every == 0 or last or stopped_early:
                save_checkpoint()
            elapsed = time.perf_counter() - started
            bar.set_postfix(
                loss=f"{train_loss:.3f}",
                tok_s=f"{(state.tokens_seen - tokens_at_start) / elapsed:.0f}",
            )
            bar.update(1)
            if on_step is not None:
                on_step(state)
            if stopped_early or out_of_time:
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
        stopped_on_time=out_of_time,
    )
    best = checkpoints / "best"
    if fsdp:
        torch.distributed.barrier()  # rank 0 wrote "best"; every rank loads its shards from it
    if best.exists() and (fsdp or dist_info.is_main):
        load_weights(model, best, fsdp)
    weights = full_weights()
    if dist_info.is_main:
        save_model(
            model,
            tokenizer,
            model_dir,
            {
                "state_dict": weights,
                "merge_lora": True,
                "json": {
                    "train_params.json": params.to_dict(),
                    "train_metrics.json": result.summary(),
                },
            },
        )
    return result


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step")


def run_train(params: Params, resume: bool = False) -> dict[str, Any]:
    """The edge: read the (augmented) train split and the validation split, train, write the
    model folder, metrics JSON and the loss curve. With ``train.num_processes`` > 1 it relaunches
    itself in that many torchrun workers (:mod:`sftops.modeling.launch`)."""
    from sftops.io import read_table, write_json
    from sftops.modeling.launch import launch_train, needs_launch
    from sftops.plots import loss_curve

    if needs_launch(params.train):
        return launch_train(params, resume)

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
