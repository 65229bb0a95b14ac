"""Training throughput: HF `Trainer` as users typically run it vs the sftops recipe, side by
side on the same synthetic SFT rows and the same model, in one run.

    python bench/train_bench.py                     # CPU: a tiny Llama, proves it works
    python bench/train_bench.py --model gpt2-124m   # GPU: GPT-2 124M architecture (random init)
    python bench/train_bench.py --model qwen2-0.5b  # GPU: Qwen2-0.5B architecture (random init)

Trainer: batch 16, padding to the longest row, bf16 on GPU, no packing. sftops: packing with
per-example position ids (no padding, no cross-example attention), bf16 autocast and
torch.compile on GPU. Prints real (non-padding) tokens/s, MFU = 6·N·tokens/s ÷ measured peak
(a large bf16 matmul on GPU, fp32 on CPU), peak memory and the ratio. The first steps of each
run (warm-up, compilation) are excluded from the timing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "the model learns to answer questions about data pipelines training loops evaluation "
    "metrics and deployment of small language models on modest hardware with care"
).split()


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Instruction rows with a realistic spread of lengths (padding matters for the Trainer)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = " ".join(rng.choices(WORDS, k=rng.randint(8, 60)))
        answer = " ".join(rng.choices(WORDS, k=rng.choice([4, 12, 40, 120, 200])))
        rows.append({"instruction": prompt, "input": "", "output": answer})
    return rows


def build_model(kind: str, folder: Path) -> Path:
    """A randomly initialised model of the named architecture with a tiny test tokenizer."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from tests.assets.tiny_models import tiny_llama

    base = tiny_llama(folder / "tokenizer_source")  # tokenizer with a ChatML template
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    vocab = len(tokenizer)
    if kind == "tiny-llama":
        config: Any = LlamaConfig(
            vocab_size=vocab,
            hidden_size=256,
            intermediate_size=688,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
        )
        model: Any = LlamaForCausalLM(config)
    elif kind == "gpt2-124m":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=1024))
    elif kind == "qwen2-0.5b":
        model = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=vocab,
                hidden_size=896,
                intermediate_size=4864,
                num_hidden_layers=24,
                num_attention_heads=14,
                num_key_value_heads=2,
                max_position_embeddings=4096,
                tie_word_embeddings=True,
            )
        )
    else:
        raise SystemExit(f"unknown --model {kind}")
    out = folder / kind
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def peak_flops(device: torch.device) -> float:
    """Measured matmul throughput: bf16 on GPU, fp32 on CPU."""
    n = 4096 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    reps = 50 if device.type == "cuda" else 10
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def run_trainer(
    model_path: Path, rows: list[dict[str, str]], args: argparse.Namespace, device: torch.device
) -> dict[str, float]:
    """HF Trainer, the common recipe: batch 16, DataCollatorForSeq2Seq padding to longest."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from sftops.modeling.formatting import encode_conversation, row_to_messages
    from sftops.modeling.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_path)
    model: Any = load_causal_lm(model_path, device=str(device), tokenizer=tokenizer)
    encoded = [encode_conversation(tokenizer, row_to_messages(r), args.max_length) for r in rows]
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in encoded])
    lengths = [len(e.input_ids) for e in encoded]
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a: Any, **k: Any) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=16,
            max_steps=args.steps,
            learning_rate=1e-4,
            bf16=device.type == "cuda",
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            dataloader_drop_last=True,
            seed=0,
            use_cpu=device.type == "cpu",
        )
        trainer = Trainer(
            model=model,
            args=targs,
            train_dataset=data,
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest"),
            callbacks=[Clock()],
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    # the sampler shuffles, so use the mean example length for the real-token count
    mean_len = sum(lengths) / len(lengths)
    timed_steps = len(times) - args.warmup
    seconds = times[-1] - times[args.warmup - 1]
    return {"tokens_per_s": timed_steps * 16 * mean_len / seconds, **_memory(device)}


def run_sftops(
    model_path: Path,
    rows: list[dict[str, str]],
    args: argparse.Namespace,
    device: torch.device,
    workdir: Path,
) -> dict[str, float]:
    import pandas as pd

    from sftops.config import Params
    from sftops.modeling.train import TrainState, train
    from tests.helpers import canonical_table

    table: pd.DataFrame = canonical_table(rows)
    marks: list[tuple[float, int]] = []

    def clock(state: TrainState) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), state.tokens_seen))

    params = Params.model_validate(
        {
            "paths": {
                "model_dir": str(workdir / "model"),
                "checkpoints_dir": str(workdir / "ck"),
                "cache_dir": str(workdir / "cache"),
            },
            "train": {
                "base_model": str(model_path),
                "max_steps": args.steps,
                "eval_every": 10**6,
                "save_every": 10**6,
                "batch_size": args.sftops_batch,
                "grad_accum": 1,
                "max_length": args.max_length,
                "max_eval_rows": 8,
                "compile": device.type == "cuda",
                "early_stopping_patience": None,
                "device": device.type,
            },
        }
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train(params, table, table.head(8), progress=False, on_step=clock)
    (t0, n0), (t1, n1) = marks[args.warmup - 1], marks[-1]
    return {"tokens_per_s": (n1 - n0) / (t1 - t0), **_memory(device)}


def _memory(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
    import resource

    return {"peak_memory_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="tiny-llama", choices=["tiny-llama", "gpt2-124m", "qwen2-0.5b"]
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--sftops-batch",
        type=int,
        default=16,
        help="packed rows of max-length tokens per micro-batch",
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = synthetic_rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_path = build_model(args.model, workdir)
        from sftops.modeling.models import count_parameters, load_causal_lm

        n_params = count_parameters(load_causal_lm(model_path))
        peak = peak_flops(device)
        trainer = run_trainer(model_path, rows, args, device)
        ours = run_sftops(model_path, rows, args, device, workdir)
    results: dict[str, Any] = {
        "device": str(device),
        "model": args.model,
        "parameters": n_params,
        "peak_flops": peak,
    }
    for name, r in (("hf_trainer", trainer), ("sftops", ours)):
        r["mfu"] = 6 * n_params * r["tokens_per_s"] / peak
        results[name] = r
    results["speedup"] = ours["tokens_per_s"] / trainer["tokens_per_s"]
    print(
        f"train bench: {args.model} ({n_params / 1e6:.1f}M params) on {device}; "
        f"measured peak {peak / 1e12:.2f} TFLOP/s"
    )
    for name in ("hf_trainer", "sftops"):
        r = results[name]
        print(
            f"  {name:10s} {r['tokens_per_s']:10.0f} tok/s   MFU {r['mfu']:6.1%}   "
            f"peak memory {r['peak_memory_gib']:.2f} GiB"
        )
    print(f"  sftops / Trainer tokens/s ratio: {results['speedup']:.2f}x")
    out = ROOT / "bench" / "results" / f"train_bench_{args.model}_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
