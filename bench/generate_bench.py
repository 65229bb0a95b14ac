"""Evaluation decoding: one-at-a-time HF `generate`, naive batched HF `generate`, and sftops'
greedy decoding (finished rows leave the batch), side by side in one run on the same prompts.

    python bench/generate_bench.py [--model smollm2-135m-instruct|<folder>] [--prompts 32]
    python bench/generate_bench.py --isa avx2     # as on a CPU without AVX-512 / AMX
    python bench/generate_bench.py --linear [--isa avx2]   # F.linear vs packed oneDNN, per shape

Greedy decoding of test-split prompts (the sample's rows when no split exists yet), built with
the training chat template. Prints new tokens/s of each side, the ratios, and how many outputs
match one-at-a-time decoding exactly. Targets (issue 16): sftops >= 8x one-at-a-time and
>= 1.4x naive batched `generate` (batch 32) on CPU; exits 1 when one is missed.

``--isa avx2`` sets ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (they must be
set before torch loads, so the bench re-runs itself) and prints a matmul microbenchmark with
and without them, to show that the setting takes effect on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's sftops, whichever one the environment installed

from sftops.reporting import cpu_model  # noqa: E402

AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
TARGET_VS_SINGLE = 8.0
TARGET_VS_NAIVE = 1.4


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """fp32 GFLOP/s of a square matmul (what the ISA limit changes)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def linear_table(rows: tuple[int, ...] = (1, 18, 32, 128)) -> list[str]:
    """GFLOP/s of SmolLM2-135M's linear shapes (out x in) at decoding row counts: torch's
    default fp32 product (``F.linear``) and the oneDNN product on a packed weight that sftops'
    decoding uses (`sftops/modeling/packed.py`)."""
    import torch

    from sftops.modeling.packed import PACK_BATCH_HINT

    def seconds(run: Any, repeats: int = 50) -> float:
        run()
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - started) / repeats

    lines = []
    for out_features, in_features in [(1536, 576), (576, 1536), (576, 576), (49152, 576)]:
        weight = torch.randn(out_features, in_features)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_BATCH_HINT)
        for m in rows:
            x = torch.randn(m, in_features)
            flop = 2 * m * out_features * in_features
            plain = seconds(lambda: torch.nn.functional.linear(x, weight))  # noqa: B023
            onednn = seconds(
                lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")  # noqa: B023
            )
            lines.append(
                f"  {out_features:>5} x {in_features:<4} rows {m:>3}: F.linear "
                f"{flop / plain / 1e9:6.1f} GFLOP/s, packed oneDNN {flop / onednn / 1e9:6.1f}"
            )
    return lines


def _matmul_in_subprocess(env: dict[str, str]) -> float:
    code = "import sys; sys.path.insert(0, sys.argv[1]); import generate_bench as g; "
    code += "print(g.matmul_gflops())"
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "bench")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def test_prompts(tokenizer: Any, n: int) -> list[str]:
    from sftops.config import Params
    from sftops.io import read_table
    from sftops.modeling.formatting import generation_prompt, row_to_messages

    params = Params()
    split = ROOT / params.paths.split("test")
    if split.is_file():
        rows = read_table(split)
    else:  # no pipeline run yet: every k-th row of the bundled sample
        from sftops.config import IngestParams
        from sftops.data.ingest import ingest_sources

        sources = [s.model_copy(update={"path": str(ROOT / s.path)}) for s in params.ingest.sources]
        table = ingest_sources(IngestParams(sources=sources)).table
        table = table[table["output"].str.len() > 0]
        rows = table.iloc[:: max(1, len(table) // n)]
    return [
        generation_prompt(tokenizer, row_to_messages(r, include_output=False))
        for r in rows.head(n).to_dict(orient="records")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--isa", choices=["native", "avx2"], default="native")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)"
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time sftops on a bf16 copy of the model, for information (default: when "
        "oneDNN has native bf16 on this CPU)",
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench/results/generate_bench.json")
    parser.add_argument(
        "--linear", action="store_true", help="only the linear-layer table (F.linear vs packed)"
    )
    args = parser.parse_args()
    if args.isa == "avx2" and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        native, limited = _matmul_in_subprocess({}), _matmul_in_subprocess(AVX2_ENV)
        print(
            f"matmul 1024² fp32: native {native:.0f} GFLOP/s, AVX2-limited {limited:.0f} GFLOP/s "
            f"({native / limited:.2f}x)",
            flush=True,
        )
        return subprocess.run(
            [sys.executable, *sys.argv], env={**os.environ, **AVX2_ENV}, check=False
        ).returncode

    # Idle OpenMP workers that spin slow generation down 5-20x on shared cores (see serve_bench).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if args.linear:
        print(
            f"linear layers, fp32, ISA {os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')}, "
            f"{torch.get_num_threads()} threads"
        )
        print("\n".join(linear_table()))
        return 0

    from sftops.config import GenerationParams, Params
    from sftops.modeling.generate import generate, one_at_a_time
    from sftops.modeling.models import load_causal_lm, load_tokenizer, resolve_model_path

    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "native")
    if args.threads:
        torch.set_num_threads(args.threads)
    params = Params()
    path = resolve_model_path(args.model, ROOT / params.paths.cache_dir)
    tokenizer = load_tokenizer(path)
    model: Any = load_causal_lm(path, tokenizer=tokenizer)
    prompts = test_prompts(tokenizer, args.prompts)
    cfg = GenerationParams(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)

    load_before = os.getloadavg()
    generate(model, tokenizer, prompts[:2], cfg)  # warm-up
    generate(model, tokenizer, prompts[:2], cfg, compact=False)
    cpu: dict[str, float] = {}  # process CPU seconds per side: less at the mercy of other jobs
    cpu_started = time.process_time()
    singles, single_s = one_at_a_time(model, tokenizer, prompts, cfg)
    cpu["one_at_a_time"] = time.process_time() - cpu_started
    started, cpu_started = time.perf_counter(), time.process_time()
    naive = generate(model, tokenizer, prompts, cfg, compact=False)
    naive_s = time.perf_counter() - started
    cpu["naive_batched"] = time.process_time() - cpu_started
    started, cpu_started = time.perf_counter(), time.process_time()
    ours = generate(model, tokenizer, prompts, cfg)
    ours_s = time.perf_counter() - started
    cpu["sftops"] = time.process_time() - cpu_started
    bf16 = args.bf16
    if bf16 is None:
        bf16 = isa == "native" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    half: dict[str, Any] | None = None
    if bf16:  # information only: bf16 logits need not pick fp32's greedy tokens
        model = model.to(torch.bfloat16)
        generate(model, tokenizer, prompts[:2], cfg)
        started, cpu_started = time.perf_counter(), time.process_time()
        halves = generate(model, tokenizer, prompts, cfg)
        half_s = time.perf_counter() - started
        cpu["sftops_bf16"] = time.process_time() - cpu_started
        half = {"gens": halves, "seconds": half_s}
    load_after = os.getloadavg()

    def rate(gens: list[Any], seconds: float) -> float:
        return sum(g.new_tokens for g in gens) / seconds

    def same(gens: list[Any]) -> int:
        return sum(a.text == b.text for a, b in zip(singles, gens, strict=True))

    r_single, r_naive, r_ours = rate(singles, single_s), rate(naive, naive_s), rate(ours, ours_s)
    vs_single, vs_naive = r_ours / r_single, r_ours / r_naive
    results: dict[str, Any] = {
        "model": args.model,
        "cpu": cpu_model(),
        "isa": isa,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "prompts": len(prompts),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "one_at_a_time": {"tok_s": r_single, "seconds": single_s},
        "naive_batched": {"tok_s": r_naive, "seconds": naive_s, "same_as_single": same(naive)},
        "sftops": {"tok_s": r_ours, "seconds": ours_s, "same_as_single": same(ours)},
        "sftops_vs_one_at_a_time": vs_single,
        "sftops_vs_naive_batched": vs_naive,
        "sftops_same_as_naive": sum(a.text == b.text for a, b in zip(naive, ours, strict=True)),
        "cpu_seconds": cpu,
        "sftops_vs_one_at_a_time_cpu": (
            cpu["one_at_a_time"] / cpu["sftops"] * r_ours * ours_s / (r_single * single_s)
        ),
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
    }
    if half is not None:
        results["sftops_bf16"] = {
            "tok_s": rate(half["gens"], half["seconds"]),
            "seconds": half["seconds"],
            "same_as_single": same(half["gens"]),
            "vs_one_at_a_time": rate(half["gens"], half["seconds"]) / r_single,
        }
    print(
        f"generate bench: {args.model}, {len(prompts)} prompts, greedy, max_new_tokens "
        f"{args.max_new_tokens}, batch {args.batch_size}; {results['cpu']}, ISA {isa}, "
        f"{results['threads']} threads"
    )
    sides = [
        ("one at a time", r_single, single_s, len(prompts), cpu["one_at_a_time"]),
        ("naive batched", r_naive, naive_s, same(naive), cpu["naive_batched"]),
        ("sftops", r_ours, ours_s, same(ours), cpu["sftops"]),
    ]
    if half is not None:
        bf = results["sftops_bf16"]
        sides.append(
            ("sftops bf16", bf["tok_s"], bf["seconds"], bf["same_as_single"], cpu["sftops_bf16"])
        )
    for name, r, s, match, c in sides:
        print(
            f"  {name:14s} {r:8.1f} new tok/s ({s:6.1f} s, {c:6.1f} CPU s)  same as "
            f"one-at-a-time {match}/{len(prompts)}"
        )
    print(
        f"  load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (shared machine); "
        f"sftops vs one at a time in CPU seconds per token "
        f"{results['sftops_vs_one_at_a_time_cpu']:.2f}x"
        + (
            f"; bf16 (information) {results['sftops_bf16']['vs_one_at_a_time']:.2f}x"
            if half is not None
            else ""
        )
    )
    ok_single, ok_naive = vs_single >= TARGET_VS_SINGLE, vs_naive >= TARGET_VS_NAIVE
    print(
        f"  sftops vs one at a time {vs_single:.2f}x (target >= {TARGET_VS_SINGLE}x) "
        f"{'PASS' if ok_single else 'FAIL'}; vs naive batched {vs_naive:.2f}x "
        f"(target >= {TARGET_VS_NAIVE}x) {'PASS' if ok_naive else 'FAIL'}"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok_single and ok_naive else 1


if __name__ == "__main__":
    sys.exit(main())
