"""Where training runs: the device, the process group under torchrun, the autocast dtype.

``autocast_dtype`` holds the measured reason why CPUs train in fp32 by default.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sftops.config import TrainParams


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


def amp_context(device: torch.device, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` on ``device``, or nothing when training in fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def agree(flag: bool, dist_info: Distributed, device: torch.device) -> bool:
    """True on every rank when it is true on any (ranks must stop at the same step)."""
    if dist_info.world_size == 1:
        return flag
    value = torch.tensor(int(flag), device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value)
