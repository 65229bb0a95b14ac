"""Generation ratio for bench/gpu.sh: sftops batched `generate` vs one prompt at a time, the same
greedy prompts (single-turn rows of data/sample through the training chat template), and the
share of answers that match exactly. Writes one JSON file. Exits 1 on a GPU when the ratio is
below the target (``TARGET_GPU``); on a CPU (the smoke run of bench/gpu.sh) no target applies.

    python bench/gpu_generate.py --out bench/results/gpu_generate.json
    python bench/gpu_generate.py --model <folder> --prompts 4 --max-new-tokens 8   # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_GPU = 20.0


def main() -> int:
    import torch

    from sftops.config import GenerationParams, load_params
    from sftops.data.ingest import ingest_sources
    from sftops.modeling.formatting import generation_prompt, row_to_messages
    from sftops.modeling.generate import generate, one_at_a_time
    from sftops.modeling.models import load_causal_lm, load_tokenizer, resolve_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    params = load_params(ROOT / "params.yaml")
    for source in params.ingest.sources:
        source.path = str(ROOT / source.path)
    table = ingest_sources(params.ingest).table
    single = table[table["history"].fillna("").isin(["", "[]"])].head(args.prompts)
    path = resolve_model_path(args.model, ROOT / params.paths.cache_dir)
    tokenizer = load_tokenizer(path)
    model: Any = load_causal_lm(path, device=device, tokenizer=tokenizer)
    prompts = [
        generation_prompt(tokenizer, row_to_messages(r, include_output=False))
        for r in single.to_dict("records")
    ]
    cfg = GenerationParams(
        strategy="greedy", max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
    )
    generate(model, tokenizer, prompts[:2], cfg)  # warm-up (CUDA context, kernels)
    started = time.perf_counter()
    batched = generate(model, tokenizer, prompts, cfg)
    batched_s = time.perf_counter() - started
    single_out, single_s = one_at_a_time(model, tokenizer, prompts, cfg)
    tokens = sum(g.new_tokens for g in single_out)
    match = sum(a.text == b.text for a, b in zip(batched, single_out, strict=True)) / len(prompts)
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "model": args.model,
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "one_at_a_time_tokens_per_s": tokens / single_s,
        "batched_tokens_per_s": sum(g.new_tokens for g in batched) / batched_s,
        "ratio": single_s / batched_s,
        "greedy_match_rate": match,
        "target_ratio_gpu": TARGET_GPU,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"generate: batched {result['batched_tokens_per_s']:.0f} tok/s vs one at a time "
        f"{result['one_at_a_time_tokens_per_s']:.0f} tok/s: {result['ratio']:.1f}x; "
        f"greedy match {match:.0%}"
    )
    if device == "cuda":
        ok = result["ratio"] >= TARGET_GPU
        print(f"target >= {TARGET_GPU:.0f}x on the GPU: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
