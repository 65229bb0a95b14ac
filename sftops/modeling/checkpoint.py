"""Checkpoints: what `--resume` needs to continue exactly, and the model folders training writes.

A checkpoint folder ``step-NNNNNN`` holds the weights (safetensors), the tokenizer, the params and
``trainer_state.pt``: optimizer, scheduler, :class:`TrainState` (step, epoch, position in the
epoch, best loss so far) and every RNG's state, so a resumed run draws the same numbers as an
uninterrupted one. Under FSDP the full weights and optimizer state are gathered to rank 0 on save
and sharded again on load.
"""

from __future__ import annotations

import glob
import json
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sftops.errors import SftopsError
from sftops.io import atomic_path

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


def save_model(model: torch.nn.Module, tokenizer: Any, target: Path, extra: dict[str, Any]) -> None:
    """Write weights (safetensors), tokenizer and JSON metadata to a temp folder, then rename
    (:func:`sftops.io.atomic_path`), so a folder that exists is always complete. A full disk (or
    another storage failure) is a one-line OutputWriteError naming ``target``; the previous
    folder stays as it was."""
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*tmp"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a save that was killed
    unwrapped: Any = getattr(model, "module", model)
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
    if hasattr(unwrapped, "merge_and_unload") and extra.get("merge_lora", False):
        unwrapped = unwrapped.merge_and_unload()
    weights = extra.get("state_dict")  # gathered from FSDP shards; else the module's own
    with atomic_path(target, directory=True) as tmp:
        if weights is not None:
            unwrapped.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
        else:
            unwrapped.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, data in extra.get("json", {}).items():
            (tmp / name).write_text(json.dumps(data, indent=2, default=str))
        for name, data in extra.get("torch", {}).items():
            # through a Python file, so a full disk surfaces as the OSError behind torch's error
            with (tmp / name).open("wb") as handle:
                torch.save(data, handle)


def latest_checkpoint(folder: Path) -> Path | None:
    candidates = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [p for p in candidates if (p / STATE_FILE).exists()]
    return complete[-1] if complete else None


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    full = get_model_state_dict(model, options=options)
    # a tied weight (lm_head = embed_tokens) comes back twice: keep the name save_pretrained
    # keeps, the first one (named_parameters drops later aliases)
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    return {k: v for k, v in full.items() if k in names}  # type: ignore[misc]


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: Any, fsdp: bool
) -> None:
    if not fsdp:
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=saved, options=options)


def load_weights(model: torch.nn.Module, folder: Path, fsdp: bool = False) -> None:
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
