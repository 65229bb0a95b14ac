"""Training throughput and quality, sftops against a reference trainer, side by side in one run.

CPU (default): sftops vs TRL's ``SFTTrainer`` (trl==1.16.0, its defaults, completion-only loss)
on SmolLM2-135M-Instruct (as sftops loads it) and the real single-turn rows of data/sample, each
side given the same training wall time, then the same held-out rows scored by the same code:

    bash bench/trl_venv.sh                          # once: TRL in its own venv, .venv-trl
    python bench/train_bench.py                     # 150 s of training per side
    python bench/train_bench.py --seconds 180 --isa avx2      # as on an AVX2-only CPU
    python bench/train_bench.py --parallel          # both sides at once, 1 thread each

GPU (or ``--smoke`` on CPU): sftops vs the HF ``Trainer`` with its defaults on randomly
initialised GPT-2 124M / 0.5B Qwen2-shaped models, synthetic rows, tokens/s and MFU:

    python bench/train_bench.py --reference trainer --model gpt2-124m
    python bench/train_bench.py --reference trainer --model qwen2-0.5b
    python bench/train_bench.py --reference trainer --model tiny-llama --smoke

Every side runs in its own process (``--side``, re-invoking this file), so peak memory is that
side's alone: the peak RSS of the process and its children on CPU, ``max_memory_allocated`` on
GPU. Tokens/s counts non-padding input tokens: the Trainer's own count
(``include_num_input_tokens_seen="non_padding"``) and sftops' ``tokens_seen``, divided by the
training loop's wall time up to the last step (model loading and tokenisation excluded on both
sides, warm-up and compilation included). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sftops.reporting import cpu_model

ROOT = Path(__file__).resolve().parents[1]
TRL_VENV = Path(os.environ.get("SFTOPS_TRL_VENV", str(ROOT / ".venv-trl")))
TARGET_SPEEDUP = {"trl": 3.0, "trainer-gpt2-124m": 10.0, "trainer-qwen2-0.5b": 8.0}
TARGET_MFU = {"trainer-gpt2-124m": 0.30, "trainer-qwen2-0.5b": 0.45}


# ------------------------------------------------------------------------------ shared helpers


def peak_rss_gib() -> float:
    """Peak resident memory of this process and of its waited-for children (Linux KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 2**20


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------ TRL side


def side_trl(args: argparse.Namespace) -> None:
    """TRL's SFTTrainer with its defaults; only output, logging and the time budget are set."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    work = Path(args.workdir)
    if args.threads:
        torch.set_num_threads(args.threads)
    conversations = read_jsonl(work / "train.jsonl")
    data = Dataset.from_list([{"prompt": m[:-1], "completion": m[-1:]} for m in conversations])
    clock: dict[str, float] = {}

    class TimeBudget(TrainerCallback):
        def on_train_begin(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            clock["start"] = time.perf_counter()

        def on_step_end(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            clock["last"] = time.perf_counter()
            clock["tokens"] = float(state.num_input_tokens_seen)
            clock["steps"] = float(state.global_step)
            if clock["last"] - clock["start"] >= args.seconds:
                control.should_training_stop = True

    # Under the AVX2 imitation (ONEDNN_MAX_CPU_ISA=AVX2 on a CPU that has AVX512-BF16) torch
    # still routes bf16 matmuls to oneDNN, which then has only reference kernels: ~0.1 GFLOP/s,
    # 100x slower than fp32, far slower than a real AVX2 CPU. TRL's default bf16 is switched off
    # there (recorded in the result) so the comparison measures training, not that artefact.
    emulated_avx2 = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2"
    config = SFTConfig(
        output_dir=str(work / "trl" / "out"),
        report_to=[],
        save_strategy="no",
        include_num_input_tokens_seen="non_padding",
        seed=0,
        use_cpu=args.device == "cpu",
        **({"bf16": False} if emulated_avx2 else {}),
    )
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    trainer = SFTTrainer(
        model=args.model_path,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[TimeBudget()],
    )
    trainer.train()
    trainer.model.save_pretrained(work / "trl" / "model", safe_serialization=True)
    tokenizer.save_pretrained(work / "trl" / "model")
    seconds = clock["last"] - clock["start"]
    write_json(
        work / "trl" / "result.json",
        {
            "steps": int(clock["steps"]),
            "tokens": int(clock["tokens"]),
            "seconds": seconds,
            "tokens_per_s": clock["tokens"] / seconds,
            "peak_memory_gib": peak_rss_gib(),
            "settings": {
                "learning_rate": config.learning_rate,
                "batch_size": config.per_device_train_batch_size,
                "max_length": config.max_length,
                "packing": config.packing,
                "gradient_checkpointing": config.gradient_checkpointing,
                "bf16": config.bf16,
                "completion_only_loss": trainer.completion_only_loss,
                "bf16_off_for_avx2_imitation": emulated_avx2,
            },
        },
    )


# ------------------------------------------------------------------------------ sftops side


def sftops_params(args: argparse.Namespace, work: Path, overrides: dict[str, Any]) -> Any:
    """params.yaml's train section (the recipe the demo runs) plus the bench's overrides."""
    from sftops.config import Params, cache_location, load_params

    base = load_params(ROOT / "params.yaml").to_dict()
    base["paths"].update(
        {
            "model_dir": str(work / "sftops" / "model"),
            "checkpoints_dir": str(work / "sftops" / "ck"),
            "cache_dir": str(ROOT / cache_location(".cache/sftops")),
        }
    )
    base["train"].update(
        {
            "base_model": args.model_path,
            "device": args.device,
            "use_augmented": False,
            "early_stopping_patience": None,
            **overrides,
        }
    )
    return Params.model_validate(base)


def side_sftops(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    sys.path.insert(0, str(ROOT))
    from sftops.modeling.train import train

    work = Path(args.workdir)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = pd.read_parquet(work / "train.parquet")
    held = pd.read_parquet(work / "heldout.parquet")
    recipe = sftops_params(args, work, {}).train
    # longer rows than params.yaml's (less truncation), the same tokens per micro-batch
    rows_per_batch = max(1, recipe.batch_size * recipe.max_length // args.max_length)
    params = sftops_params(
        args,
        work,
        {
            "max_seconds": args.seconds,
            "max_steps": None,
            "epochs": 3.0,
            "max_length": args.max_length,
            "batch_size": rows_per_batch,
            "eval_every": 10**6,
            "save_every": 10**6,
            "max_eval_rows": 8,  # one in-loop evaluation at the end; the bench scores apart
            **json.loads(args.sftops_overrides),
        },
    )
    result = train(params, table, held, progress=False)
    last = result.history[-1]
    write_json(
        work / "sftops" / "result.json",
        {
            "steps": result.steps,
            "tokens": result.tokens,
            "seconds": last["seconds"],
            "tokens_per_s": result.tokens / last["seconds"],
            "peak_memory_gib": peak_rss_gib(),
            "encoding": result.encoding,
            "settings": {
                k: getattr(params.train, k)
                for k in (
                    "lr",
                    "batch_size",
                    "grad_accum",
                    "max_length",
                    "packing",
                    "schedule",
                    "precision",
                    "compile",
                )
            },
            "autocast": str(_sftops_autocast(params)),
        },
    )


def _sftops_autocast(params: Any) -> Any:
    import torch

    from sftops.modeling.hardware import autocast_dtype

    return autocast_dtype(params.train, torch.device(params.train.device))


# ------------------------------------------------------------------------------ CPU: vs TRL


def prepare_rows(work: Path, heldout: int) -> tuple[int, int]:
    """The sample's single-turn rows (ingested as the pipeline does), a fixed held-out set chosen
    by a hash of the row id, written for both sides (parquet for sftops, chat JSONL for TRL)."""
    from sftops.config import load_params
    from sftops.data.ingest import hash_fraction, ingest_sources
    from sftops.modeling.formatting import row_to_messages

    params = load_params(ROOT / "params.yaml")
    for source in params.ingest.sources:
        source.path = str(ROOT / source.path)
    table = ingest_sources(params.ingest).table
    single = table[table["history"].fillna("").isin(["", "[]"])].reset_index(drop=True)
    order = sorted(range(len(single)), key=lambda i: hash_fraction(single["row_id"][i], "bench"))
    held = single.iloc[sorted(order[:heldout])].reset_index(drop=True)
    train = single.iloc[sorted(order[heldout:])].reset_index(drop=True)
    train.to_parquet(work / "train.parquet")
    held.to_parquet(work / "heldout.parquet")
    lines = [json.dumps(row_to_messages(r), ensure_ascii=False) for r in train.to_dict("records")]
    (work / "train.jsonl").write_text("\n".join(lines) + "\n")
    return len(train), len(held)


def heldout_loss(model_dir: Path, work: Path, max_length: int, limit: int = 0) -> float:
    """Mean loss per answer token on the held-out rows, the same code for every model."""
    import pandas as pd
    import torch

    from sftops.modeling.data import encode_rows, single_rows
    from sftops.modeling.hardware import cpu_has_native_bf16
    from sftops.modeling.loss import mean_loss
    from sftops.modeling.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, tokenizer=tokenizer)
    held = pd.read_parquet(work / "heldout.parquet")
    examples, _ = encode_rows(held.head(limit) if limit else held, tokenizer, max_length)
    rows = single_rows(examples)
    # bf16 autocast where native (twice as fast here); the same for every model scored
    amp = torch.bfloat16 if cpu_has_native_bf16() else None
    return mean_loss(model, rows, 4, tokenizer.pad_token_id, False, torch.device("cpu"), amp)


def run_side(side: str, args: argparse.Namespace, work: Path, env: dict[str, str]) -> Any:
    python = str(TRL_VENV / "bin" / "python") if side == "trl" else sys.executable
    command = [python, str(Path(__file__).resolve()), "--side", side, "--workdir", str(work)]
    command += ["--model-path", args.model_path, "--seconds", str(args.seconds)]
    command += ["--device", args.device, "--threads", str(args.threads)]
    command += ["--max-length", str(args.max_length), "--sftops-overrides", args.sftops_overrides]
    log = (work / f"{side}.log").open("w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def compare_with_trl(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from sftops.config import cache_location
    from sftops.modeling.models import resolve_model_path

    if not (TRL_VENV / "bin" / "python").exists():
        print(f"no TRL venv at {TRL_VENV}: run `bash bench/trl_venv.sh` first", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    if args.isa == "avx2":
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = ROOT / cache_location(".cache/sftops")  # $SFTOPS_CACHE_DIR when set
    args.model_path = str(resolve_model_path("smollm2-135m-instruct", cache))
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        sides = ("trl", "sftops")
        if args.score_only:  # a finished run's workdir: score its models again
            n_train, codes = len(read_jsonl(work / "train.jsonl")), [0, 0]
        elif args.parallel:
            n_train, _ = prepare_rows(work, args.heldout)
            procs = [run_side(s, args, work, env) for s in sides]
            codes = [p.wait() for p in procs]
        else:
            n_train, _ = prepare_rows(work, args.heldout)
            codes = [run_side(s, args, work, env).wait() for s in sides]
        for side, code in zip(sides, codes, strict=True):
            if code != 0:
                print((work / f"{side}.log").read_text()[-3000:], file=sys.stderr)
                print(f"train bench: the {side} side failed (exit {code})", file=sys.stderr)
                return 1
        results = {s: json.loads((work / s / "result.json").read_text()) for s in sides}
        eval_length, limit = 2048, args.score_rows
        n_held = min(limit or args.heldout, args.heldout)
        base = heldout_loss(Path(args.model_path), work, eval_length, limit)
        for side in sides:
            results[side]["heldout_loss"] = heldout_loss(
                work / side / "model", work, eval_length, limit
            )
    return report_trl(args, results, base, n_train, n_held)


def report_trl(
    args: argparse.Namespace, results: dict[str, Any], base: float, n_train: int, n_held: int
) -> int:
    import torch

    ratio = results["sftops"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
    better = results["sftops"]["heldout_loss"] < results["trl"]["heldout_loss"]
    summary = {
        "cpu": f"{cpu_model()} x{os.cpu_count()}",
        "threads": args.threads or torch.get_num_threads(),
        "isa": args.isa,
        "parallel": args.parallel,
        "seconds_per_side": args.seconds,
        "rows": {"train": n_train, "heldout": n_held},
        "base_heldout_loss": base,
        **results,
        "ratio_tokens_per_s": ratio,
        "sftops_lower_heldout_loss": better,
    }
    mode = "both sides at once" if args.parallel else "one side after the other"
    print(
        f"train bench (CPU, {summary['cpu']}, ISA {args.isa}, {mode}): SmolLM2-135M, "
        f"{n_train} train rows, {n_held} held-out rows, {args.seconds:.0f} s of training per side"
    )
    print(f"  base model held-out loss {base:.4f}")
    for side in ("trl", "sftops"):
        r = results[side]
        print(
            f"  {side:7s} {r['tokens_per_s']:8.1f} non-pad tok/s  {r['steps']:4d} steps "
            f"{r['seconds']:6.1f} s  held-out loss {r['heldout_loss']:.4f}  "
            f"peak RSS {r['peak_memory_gib']:.2f} GiB"
        )
    print(f"  sftops / TRL tokens/s: {ratio:.2f}x (target >= {TARGET_SPEEDUP['trl']:.0f}x)")
    print(f"  sftops held-out loss lower at equal time: {'yes' if better else 'NO'}")
    out = ROOT / "bench" / "results" / f"train_bench_trl_{args.isa}.json"
    write_json(out, summary)
    print(f"  results: {out.relative_to(ROOT)}")
    return 0 if ratio >= TARGET_SPEEDUP["trl"] and better else 1


# ------------------------------------------------------------------------------ GPU: vs Trainer

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
        AutoTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from tests.assets.tiny_models import tiny_llama

    base = tiny_llama(folder / "tokenizer_source")  # tokenizer with a ChatML template
    tokenizer = AutoTokenizer.from_pretrained(base)
    vocab = len(tokenizer)
    if kind == "tiny-llama":
        model: Any = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=128,
                intermediate_size=344,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=1024,
            )
        )
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


def peak_flops(device: Any) -> float:
    """Measured matmul throughput: bf16 on GPU, fp32 on CPU."""
    import torch

    n = 4096 if device.type == "cuda" else 512
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    reps = 50 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _gpu_memory(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated() / 2**30)
    return peak_rss_gib()


def side_trainer(args: argparse.Namespace) -> None:
    """HF Trainer with its defaults (batch 8, no packing, the default collator padding to the
    longest row); bf16 on GPU as a user would set it."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from sftops.modeling.formatting import encode_conversation, row_to_messages
    from sftops.modeling.models import load_causal_lm, load_tokenizer

    work = Path(args.workdir)
    device = torch.device(args.device)
    tokenizer = load_tokenizer(args.model_path)
    model: Any = load_causal_lm(args.model_path, device=str(device), tokenizer=tokenizer)
    rows = read_jsonl(work / "synthetic.jsonl")
    encoded = [encode_conversation(tokenizer, row_to_messages(r), args.max_length) for r in rows]
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in encoded])
    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

    targs = TrainingArguments(
        output_dir=str(work / "trainer-out"),
        max_steps=args.steps,
        bf16=device.type == "cuda",
        save_strategy="no",
        report_to=[],
        seed=0,
        use_cpu=device.type == "cpu",
        include_num_input_tokens_seen="non_padding",
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
    (t0, n0), (t1, n1) = marks[args.warmup - 1], marks[-1]
    write_json(
        work / "trainer" / "result.json",
        {"tokens_per_s": (n1 - n0) / (t1 - t0), "peak_memory_gib": _gpu_memory(device)},
    )


def side_sftops_synthetic(args: argparse.Namespace) -> None:
    import torch

    from sftops.modeling.train import TrainState, train
    from tests.helpers import canonical_table

    work = Path(args.workdir)
    device = torch.device(args.device)
    table = canonical_table(read_jsonl(work / "synthetic.jsonl"))
    marks: list[tuple[float, int]] = []

    def clock(state: TrainState) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), state.tokens_seen))

    params = sftops_params(
        args,
        work,
        {
            "max_steps": args.steps,
            "eval_every": 10**6,
            "save_every": 10**6,
            "batch_size": args.sftops_batch,
            "grad_accum": 1,
            "max_length": args.max_length,
            "max_eval_rows": 8,
            "compile": device.type == "cuda",
            **json.loads(args.sftops_overrides),
        },
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train(params, table, table.head(8), progress=False, on_step=clock)
    (t0, n0), (t1, n1) = marks[args.warmup - 1], marks[-2]  # the last step also evaluates
    write_json(
        work / "sftops" / "result.json",
        {"tokens_per_s": (n1 - n0) / (t1 - t0), "peak_memory_gib": _gpu_memory(device)},
    )


def compare_with_trainer(args: argparse.Namespace) -> int:
    import torch

    sys.path.insert(0, str(ROOT))
    from sftops.modeling.models import count_parameters, load_causal_lm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.device = device.type
    if args.smoke:
        args.steps, args.warmup, args.rows = min(args.steps, 4), 1, min(args.rows, 64)
        args.max_length, args.sftops_batch = min(args.max_length, 128), min(args.sftops_batch, 2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = synthetic_rows(args.rows)
        (work / "synthetic.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        args.model_path = str(build_model(args.model, work))
        n_params = count_parameters(load_causal_lm(args.model_path))
        peak = peak_flops(device)
        results: dict[str, Any] = {}
        for side in ("trainer", "sftops"):
            command = [sys.executable, str(Path(__file__).resolve()), "--side", side]
            command += ["--workdir", str(work), "--model-path", args.model_path]
            command += ["--device", args.device, "--steps", str(args.steps)]
            command += ["--warmup", str(args.warmup), "--max-length", str(args.max_length)]
            command += ["--sftops-batch", str(args.sftops_batch)]
            command += ["--sftops-overrides", args.sftops_overrides]
            command += ["--smoke"] if args.smoke else []
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                print(done.stdout[-2000:] + done.stderr[-3000:], file=sys.stderr)
                print(f"train bench: the {side} side failed", file=sys.stderr)
                return 1
            results[side] = json.loads((work / side / "result.json").read_text())
    for r in results.values():
        r["mfu"] = 6 * n_params * r["tokens_per_s"] / peak
    key = f"trainer-{args.model}"
    speedup = results["sftops"]["tokens_per_s"] / results["trainer"]["tokens_per_s"]
    summary = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{cpu_model()} x{os.cpu_count()}",
        "model": args.model,
        "parameters": n_params,
        "peak_flops": peak,
        **results,
        "speedup": speedup,
        "smoke": args.smoke,
    }
    print(
        f"train bench: {args.model} ({n_params / 1e6:.1f}M params, random init) on {device}; "
        f"measured matmul peak {peak / 1e12:.2f} TFLOP/s"
    )
    for name in ("trainer", "sftops"):
        r = results[name]
        print(
            f"  {name:8s} {r['tokens_per_s']:10.0f} non-pad tok/s   MFU {r['mfu']:6.1%}   "
            f"peak memory {r['peak_memory_gib']:.2f} GiB"
        )
    print(f"  sftops / Trainer tokens/s: {speedup:.2f}x")
    out = Path(args.results) if args.results else ROOT / "bench" / "results" / f"train_{key}.json"
    write_json(out, summary)
    if args.smoke or key not in TARGET_SPEEDUP:
        return 0
    ok = speedup >= TARGET_SPEEDUP[key] and results["sftops"]["mfu"] >= TARGET_MFU[key]
    print(
        f"  target >= {TARGET_SPEEDUP[key]:.0f}x and MFU >= {TARGET_MFU[key]:.0%}: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


# ------------------------------------------------------------------------------ entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="trl", choices=["trl", "trainer"])
    parser.add_argument("--seconds", type=float, default=150.0, help="training time per side")
    parser.add_argument("--isa", default="native", choices=["native", "avx2"])
    parser.add_argument("--parallel", action="store_true", help="run both sides at once")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per side (0: auto)")
    parser.add_argument("--heldout", type=int, default=100)
    parser.add_argument(
        "--score-rows", type=int, default=0, help="score only the first N held-out rows (0: all)"
    )
    parser.add_argument(
        "--score-only", action="store_true", help="re-score the models of an earlier --workdir"
    )
    parser.add_argument("--max-length", type=int, default=512, help="sftops max_length")
    parser.add_argument("--sftops-overrides", default="{}", help="JSON train params for sftops")
    parser.add_argument("--workdir", default="", help="keep intermediate files here")
    parser.add_argument(
        "--model", default="gpt2-124m", choices=["tiny-llama", "gpt2-124m", "qwen2-0.5b"]
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sftops-batch", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code paths")
    parser.add_argument("--results", default="", help="results JSON path (trainer mode)")
    # internal: one side in this process
    parser.add_argument("--side", choices=["trl", "sftops", "trainer"], default="")
    parser.add_argument("--model-path", default="")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.side == "trl":
        side_trl(args)
    elif args.side == "trainer":
        side_trainer(args)
    elif args.side == "sftops":
        if args.reference == "trl" and (Path(args.workdir) / "train.parquet").exists():
            side_sftops(args)
        else:
            side_sftops_synthetic(args)
    elif args.reference == "trl":
        if args.parallel and not args.threads:
            args.threads = max(1, (os.cpu_count() or 2) // 2)
        raise SystemExit(compare_with_trl(args))
    else:
        raise SystemExit(compare_with_trainer(args))


if __name__ == "__main__":
    main()
