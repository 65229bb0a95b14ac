"""Ablation: does augmentation help? Both settings of issue 13, side by side in one table.

    python bench/augment_ablation.py [--setting lowres_en_100 --setting full_train]
                                     [--set train.max_steps=12 ...] [--previous FILE] [--no-mlflow]

Each setting trains twice from the same seed and steps (with / without augmentation), evaluates
both on the same test rows and reports the paired-bootstrap difference of the primary metric
and of the per-row reference loss (``sftops.mlops.ablation``; ``sftops ablate augment`` runs
one setting). Reads the splits written by the data stages (`sftops run --no-train`).
Results: ``bench/results/ablation/<setting>.json|.md`` and ``bench/results/augment_ablation.md``.

``--previous FILE``: reuse settings already in that JSON (a finished setting is not rerun:
training on CPU is deterministic) when they were run with the same overrides; a setting run
with other overrides is run again. ``--out DIR``: where the results go (default bench/results).
Exits 1 when a run fails or the previous file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sftops.config import load_params, parse_override  # noqa: E402
from sftops.errors import SftopsError  # noqa: E402
from sftops.mlops.ablation import AblationSetting, run_ablation, table_markdown  # noqa: E402

# Small CPU budget: a short run that still moves the model (last 4 layers, higher lr, short
# rows); the same for both settings and both arms.
CPU_OVERRIDES: dict[str, Any] = {
    "train.max_steps": 12,
    "train.max_length": 128,
    "train.method": "freeze",
    "train.trainable_layers": 4,
    "train.lr": 3e-4,
    "train.batch_size": 4,
    "train.grad_accum": 1,
    "train.eval_every": 12,
    "train.save_every": 12,
    "train.max_eval_rows": 32,
    "evaluate.generation.max_new_tokens": 24,
    "evaluate.generation.batch_size": 32,
}


# Each setting: which rows, and its own overrides on top of CPU_OVERRIDES.
def _low_resource(
    name: str, rows: int, tasks: tuple[str, ...], lang: str = "en"
) -> AblationSetting:
    """Rows of ``tasks`` in ``lang``, three training seeds, tested on the test split and on
    every train row the setting leaves unused (a narrower CI)."""
    return AblationSetting(
        name, train_rows=rows, tasks=tasks, languages=(lang,), test_unused_train=True, seeds=3
    )


def _steps(n: int) -> dict[str, Any]:
    return {"train.max_steps": n, "train.eval_every": n, "train.save_every": n}


def _candidates(per_row: int) -> dict[str, Any]:
    """``per_row`` synonym candidates per row, back-translation through Spanish and Catalan."""
    return {"augment.synonym.n_aug": per_row, "augment.backtranslation.pivots": ["spa", "cat"]}


NO_FLUENCY_CHECK = {"augment.filter.fluency_model": None}
CLS = ("classification",)
SETTINGS: dict[str, tuple[AblationSetting, dict[str, Any]]] = {
    # 100 English classification / short-answer rows, half an epoch, one seed, test split only.
    "lowres_en_100": (
        AblationSetting(
            "lowres_en_100", train_rows=100, tasks=("classification", "qa"), languages=("en",)
        ),
        {},
    ),
    # 24 English classification rows, 10 epochs (60 steps of 4): the regime where the
    # literature reports gains. With the default filter, then without its fluency check.
    "cls24_s60_3seeds": (
        _low_resource("cls24_s60_3seeds", 24, CLS),
        {**_steps(60), **_candidates(4)},
    ),
    "cls24_s60_3seeds_n8": (
        _low_resource("cls24_s60_3seeds_n8", 24, CLS),
        {**_steps(60), **_candidates(8)},
    ),
    "cls24_s60_3seeds_nofluency_n8": (
        _low_resource("cls24_s60_3seeds_nofluency_n8", 24, CLS),
        {**_steps(60), **_candidates(8), **NO_FLUENCY_CHECK},
    ),
    # The lenient setting on 24 Chinese classification rows (synonyms only: no back-translation
    # model for Chinese ships offline).
    "zh_cls24_s60_3seeds_nofluency_n8": (
        _low_resource("zh_cls24_s60_3seeds_nofluency_n8", 24, CLS, lang="zh"),
        {**_steps(60), **_candidates(8), **NO_FLUENCY_CHECK, "augment.languages": ["en", "zh"]},
    ),
    # 100 English classification / short-answer rows, one epoch (25 steps of 4), the same
    # augmentation as the setting above.
    "en100_1epoch_3seeds_nofluency_n8": (
        _low_resource("en100_1epoch_3seeds_nofluency_n8", 100, ("classification", "qa")),
        {**_steps(25), **_candidates(8), **NO_FLUENCY_CHECK},
    ),
    # The whole train split (both languages, every task), 60 test rows.
    "full_train": (AblationSetting("full_train", test_rows=60), {}),
}


def load_previous(path: Path | None, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Results in ``path`` of the settings in ``runs`` run with the same overrides (a setting
    run with others is dropped: it runs again)."""
    if path is None:
        return {}
    try:
        previous: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SftopsError(f"{path}: cannot read previous results ({err})") from err
    kept = {}
    for name, overrides in runs.items():
        if name not in previous:
            continue
        if previous[name].get("overrides", overrides) == overrides:  # older files had none
            kept[name] = previous[name]
        else:
            print(f"{name}: in {path} with other overrides, run again")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", choices=sorted(SETTINGS), default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--previous", type=Path, default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    cli = dict(parse_override(o) for o in args.overrides)
    out: Path = args.out
    names = args.setting or list(SETTINGS)
    runs = {name: {**CPU_OVERRIDES, **SETTINGS[name][1], **cli} for name in names}
    try:
        previous = load_previous(args.previous, runs)
        results = {}
        for name in names:
            if name in previous:
                print(f"{name}: reused from {args.previous}")
                results[name] = previous[name]
                continue
            params = load_params(ROOT / "params.yaml", runs[name])
            results[name] = run_ablation(
                params, SETTINGS[name][0], out / "ablation", mlflow=not args.no_mlflow
            )
            results[name]["overrides"] = runs[name]
            print(table_markdown([results[name]]), flush=True)
    except SftopsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    table = table_markdown(list(results.values()))
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "augment_ablation.json").write_text(json.dumps(results, indent=2))
    (out / "augment_ablation.md").write_text(
        "# Augmentation ablation (with minus without; paired bootstrap, 95% CI)\n\n"
        + "".join(
            f"- `{n}` overrides: `{json.dumps(r.get('overrides'))}`\n" for n, r in results.items()
        )
        + f"\n{table}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
