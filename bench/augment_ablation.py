"""Ablation: held-out loss after the same short training run with and without augmentation.

    python bench/augment_ablation.py [--set train.max_steps=24 ...]

Both runs use params.yaml (plus overrides) and differ only in `train.use_augmented`; the held-out
figure is the mean per-token loss on the *test* split (validation drives early stopping and
best-checkpoint choice, so it is not a clean held-out set). Reads the splits written by
`sftops run` / `dvc repro augment`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sftops.config import load_params, parse_override  # noqa: E402
from sftops.evaluation.evaluate import reference_nll  # noqa: E402
from sftops.io import read_table  # noqa: E402
from sftops.modeling.models import load_causal_lm, load_tokenizer, resolve_model_path  # noqa: E402
from sftops.modeling.train import train  # noqa: E402


def test_loss(model_dir: Path, params: Any) -> float:
    tokenizer = load_tokenizer(model_dir)
    model: Any = load_causal_lm(model_dir, tokenizer=tokenizer)
    return reference_nll(model, tokenizer, read_table(params.paths.split("test")), params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="reuse results of runs already in this JSON (training on CPU is "
        "deterministic, so a finished run need not be repeated)",
    )
    args = parser.parse_args()
    overrides = dict(parse_override(o) for o in args.overrides)
    results: dict[str, Any] = json.loads(args.previous.read_text()) if args.previous else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, augmented in (("with_augmentation", True), ("without_augmentation", False)):
            if name in results:
                continue
            run = Path(tmp) / name
            params = load_params(
                ROOT / "params.yaml",
                {
                    **overrides,
                    "train.use_augmented": augmented,
                    "paths.model_dir": str(run / "model"),
                    "paths.checkpoints_dir": str(run / "ck"),
                },
            )
            train_path = params.paths.train_aug if augmented else params.paths.split("train")
            result = train(
                params,
                read_table(train_path),
                read_table(params.paths.split("validation")),
                progress=False,
            )
            results[name] = {
                "train_rows": result.encoding["rows"],
                "steps": result.steps,
                "tokens": result.tokens,
                "base_val_loss": result.base_val_loss,
                "best_val_loss": result.best_val_loss,
                "test_loss": test_loss(run / "model", params),
            }
            print(name, json.dumps(results[name]), flush=True)
        base = resolve_model_path(params.train.base_model, params.paths.cache_dir)
        results["base_model_test_loss"] = test_loss(base, params)
    print(
        f"\nheld-out (test split) loss per target token, {results['with_augmentation']['steps']}"
        " steps each"
    )
    print(f"  base model            {results['base_model_test_loss']:.4f}")
    for name in ("without_augmentation", "with_augmentation"):
        r = results[name]
        print(
            f"  {name:21s} {r['test_loss']:.4f}   (train rows {r['train_rows']}, "
            f"best val {r['best_val_loss']:.4f})"
        )
    out = ROOT / "bench" / "results" / "augment_ablation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
