"""Generation throughput: one-at-a-time HF `generate` vs sftops batched generation, on the same
prompts and model, side by side in one run.

    python bench/generate_bench.py [--model smollm2-135m-instruct|<folder>] [--prompts 64]

Greedy decoding of test-split prompts (the chat template of training). Prints new tokens/s for
both and the ratio. Target (issue 6): >= 4x on CPU with the default 135M model.
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

from sftops.config import GenerationParams, Params  # noqa: E402
from sftops.io import read_table  # noqa: E402
from sftops.modeling.formatting import generation_prompt, row_to_messages  # noqa: E402
from sftops.modeling.generate import generate, one_at_a_time  # noqa: E402
from sftops.modeling.models import load_causal_lm, load_tokenizer, resolve_model_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    params = Params()
    path = resolve_model_path(args.model, params.paths.cache_dir)
    tokenizer = load_tokenizer(path)
    model: Any = load_causal_lm(path, tokenizer=tokenizer)
    test = read_table(ROOT / params.paths.split("test")).head(args.prompts)
    prompts = [
        generation_prompt(tokenizer, row_to_messages(r, include_output=False))
        for r in test.to_dict(orient="records")
    ]
    cfg = GenerationParams(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)

    generate(model, tokenizer, prompts[:2], cfg)  # warm-up
    singles, single_seconds = one_at_a_time(model, tokenizer, prompts, cfg)
    started = time.perf_counter()
    batched = generate(model, tokenizer, prompts, cfg)
    batched_seconds = time.perf_counter() - started

    single_tokens = sum(g.new_tokens for g in singles)
    batched_tokens = sum(g.new_tokens for g in batched)
    same = sum(a.text == b.text for a, b in zip(singles, batched, strict=True))
    results = {
        "model": args.model,
        "prompts": len(prompts),
        "batch_size": args.batch_size,
        "one_at_a_time_tokens_per_s": single_tokens / single_seconds,
        "batched_tokens_per_s": batched_tokens / batched_seconds,
        "ratio": (batched_tokens / batched_seconds) / (single_tokens / single_seconds),
        "identical_outputs": same,
    }
    print(
        f"generate bench: {args.model}, {len(prompts)} prompts, greedy, "
        f"max_new_tokens {args.max_new_tokens}"
    )
    print(
        f"  one at a time   {results['one_at_a_time_tokens_per_s']:8.1f} new tok/s "
        f"({single_seconds:.1f} s)"
    )
    print(
        f"  batched ({args.batch_size:3d})   {results['batched_tokens_per_s']:8.1f} new tok/s "
        f"({batched_seconds:.1f} s)"
    )
    print(
        f"  ratio {results['ratio']:.2f}x (target >= 4x on CPU); identical outputs "
        f"{same}/{len(prompts)}"
    )
    out = ROOT / "bench" / "results" / "generate_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
