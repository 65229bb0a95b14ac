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
    seconds: float = 0.0  # training wall time so far, across resumes (for train.max_seconds)
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
    if cfg.precision == "bf16":
        return torch.bfloat16
    if cfg.precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    # CPU: fp32. Measured on an AVX512-BF16 CPU (bench/train_bench.py), bf16 autocast trained
    # SmolLM2-135M at 131 tok/s vs 180 tok/s in fp32: the casts cost more than the matmuls
    # gain. precision=bf16 still forces it (cpu_has_native_bf16 says where it can pay off).
    return None


_AVX512_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX")


def cpu_has_native_bf16(
    flags: str | None = None, max_isa: str | None = None, machine: str | None = None
) -> bool:
    """Whether bf16 matmuls run natively here (AVX512-BF16 or AMX on x86; Arm with BF16).

    Without them oneDNN emulates bf16 and autocast makes training slower, not faster. An
    ``ONEDNN_MAX_CPU_ISA`` cap below AVX512-BF16 (e.g. ``AVX2``, to imitate a laptop) counts as
    absent, since oneDNN then dispatches as on that CPU.

    >>> cpu_has_native_bf16("fpu avx2 avx512f avx512_bf16", "", "x86_64")
    True
    >>> cpu_has_native_bf16("fpu avx2 avx512f avx512_bf16", "AVX2", "x86_64")
    False
    >>> cpu_has_native_bf16("fpu avx2 fma", "", "x86_64")
    False
    """
    import platform

    machine = machine if machine is not None else platform.machine()
    if flags is None:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    if max_isa is None:
        max_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    words = set(flags.lower().split())
    if machine.lower() in ("aarch64", "arm64"):
        return "bf16" in words
    has = bool(words & {"avx512_bf16", "amx_bf16"})
    capped = max_isa.strip().upper() not in ("", "ALL", "DEFAULT") and not any(
        max_isa.strip().upper().startswith(isa) for isa in _AVX512_ISAS
    )
    return has and not capped


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG's state in types ``torch.load(weights_only=True)`` accepts (lists, numbers,
    tensors), so resuming never unpickles arbitrary objects."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [
            str(name),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
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
    weights = extra.get("state_dict")  # gathered from FSDP shards; else the module's own
    if weights is not None:
        unwrapped.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
    else:
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
        _load_weights(model, resumed_from, fsdp)
        _load_optimizer(model, optimizer, saved["optimizer"], fsdp)
        scheduler.load_state_dict(saved["scheduler"])
        state = TrainState(**saved["state"])
        set_rng_state(saved["rng"])
        log.info("resumed from %s (step %d)", resumed_from, state.step)
    elif dist_info.is_main:
        shutil.rmtree(checkpoints, ignore_errors=True)

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
        return _full_model_state(model) if fsdp else None

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
        optimizer_state = _full_optimizer_state(model, optimizer) if fsdp else None
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
                    with context_manager, _autocast(device, amp):
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
                out_of_time = _agree(used >= cfg.max_seconds, dist_info, device)
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
        _load_weights(model, best, fsdp)
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


def _agree(flag: bool, dist_info: Distributed, device: torch.device) -> bool:
    """True on every rank when it is true on any (ranks must stop at the same step)."""
    if dist_info.world_size == 1:
        return flag
    value = torch.tensor(int(flag), device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value)


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
    for layer in _decoder_layers(model):
        fully_shard(layer, **options)
    fully_shard(runner, **options)


def _full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_model_state_dict(model, options=options)
    # a tied weight (lm_head = embed_tokens) comes back twice: keep the name save_pretrained
    # keeps, the first one (named_parameters drops later aliases)
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    return {k: v for k, v in full.items() if k in names}  # type: ignore[misc]


def _full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def _load_optimizer(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: Any, fsdp: bool
) -> None:
    if not fsdp:
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=saved, options=options)


def _load_weights(model: torch.nn.Module, folder: Path, fsdp: bool = False) -> None:
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
    if fsdp:  # every rank holds the full tensors and keeps its own shards of them
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        options = StateDictOptions(full_state_dict=True, strict=False)
        missing, unexpected = set_model_state_dict(target, state, options=options)  # type: ignore[arg-type]
    else:
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
