"""Registry test data: a plausible lineage, training report and evaluate report."""

from __future__ import annotations

from typing import Any

LINEAGE = {
    "git.commit": "0123456789abcdef0123456789abcdef01234567",
    "git.dirty": "false",
    "dvc.train_data": "data/splits/train_aug.parquet",
    "dvc.train_data_md5": "ff71fb590d703ea100b07ab22e86dcd7",
    "dvc.test_data": "data/splits/test.parquet",
    "dvc.test_data_md5": "3a543871877f9afb841e4e4e3c8a285d",
    "dvc.model_md5": "unknown",
    "base_model": "tiny-llama",
    "rows.train": "1883",
    "rows.test": "40",
}


def fake_metrics(candidate_f1: float, champion_f1: float | None, test_set: str = "fp1") -> dict:
    """An evaluate report shaped like reports/metrics.json (plausible numbers)."""

    def model(f1: float) -> dict[str, Any]:
        return {
            "exact_match": round(f1 / 4, 3),
            "token_f1": f1,
            "chrf": 100 * f1 * 0.9,
            "rouge_l": f1 * 0.95,
            "bleu": 30 * f1,
            "chrf_corpus": 100 * f1 * 0.9,
            "reference_nll": 2.5 - f1,
            "perplexity": 2.718 ** (2.5 - f1),
            "accuracy": 0.5 + f1 / 2,
            "macro_f1": 0.4 + f1 / 2,
            "hit_max_new_tokens": 1,
            "bleu_by_lang": {"en": 30 * f1, "zh": 20 * f1},
            "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
        }

    models = {"base": model(0.30), "candidate": model(candidate_f1)}
    if champion_f1 is not None:
        models["champion"] = model(champion_f1)

    def diff(other: float) -> dict[str, Any]:
        d = candidate_f1 - other
        return {
            m: {"diff": d, "ci": [d - 0.02, d + 0.02], "p_value": 0.001}
            for m in ("exact_match", "token_f1", "chrf", "rouge_l")
        }

    differences = {"candidate_vs_base": diff(0.30)}
    if champion_f1 is not None:
        differences["candidate_vs_champion"] = diff(champion_f1)
    return {
        "test_rows": 40,
        "test_set": test_set,
        "skipped_no_reference": 0,
        "models": models,
        "intervals": {
            name: {
                m: {"mean": v[m], "ci": [v[m] - 0.03, v[m] + 0.03]}
                for m in ("exact_match", "token_f1", "chrf", "rouge_l")
            }
            for name, v in models.items()
        },
        "differences": differences,
    }


TRAIN_REPORT = {
    "base_val_loss": 1.52,
    "final_val_loss": 0.56,
    "steps": 3,
    "history": [
        {"step": 0, "val_loss": 1.52, "train_loss": float("nan")},
        {"step": 1, "train_loss": 1.77, "lr": 1e-4, "grad_norm": 11.3},
        {"step": 2, "train_loss": 1.15, "lr": 9.9e-5, "grad_norm": 9.3},
        {"step": 3, "train_loss": 0.90, "lr": 9.0e-5, "grad_norm": 7.1, "val_loss": 0.56},
    ],
}
