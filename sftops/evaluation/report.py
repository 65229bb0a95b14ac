"""Writing the evaluate stage's outputs: metrics JSON (DVC metrics), per-row predictions,
plots, a markdown summary and a human-evaluation sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sftops.config import Params
from sftops.evaluation.evaluate import ROW_METRICS, EvaluateResult, evaluate, prompts_for
from sftops.io import atomic_path, write_json, write_jsonl, write_text
from sftops.rowkeys import hash_fraction


def prediction_records(result: EvaluateResult) -> list[dict[str, Any]]:
    records = []
    for i, row in enumerate(result.test.to_dict(orient="records")):
        record: dict[str, Any] = {
            "row_id": row["row_id"],
            "lang": row["lang"],
            "task": row["task"],
            "instruction": row["instruction"],
            "input": row["input"],
            "reference": row["output"],
            "label": row["label"],
        }
        for e in result.evals:
            record[f"{e.name}_output"] = e.outputs[i]
            record[f"{e.name}_scores"] = {m: float(e.row_scores[m][i]) for m in ROW_METRICS}
            if e.classification is not None and row["label"] is not None:
                record[f"{e.name}_label"] = e.predicted_labels[i]
        records.append(record)
    return records


def human_eval_sheet(result: EvaluateResult, rows: int) -> pd.DataFrame:
    """N rows chosen by hash (stable across runs), blank rating columns for reviewers."""
    test = result.test
    order = sorted(range(len(test)), key=lambda i: hash_fraction(test["row_id"][i], "human"))
    picked = order[:rows]
    sheet = pd.DataFrame(
        {
            "row_id": test["row_id"].iloc[picked].to_numpy(),
            "prompt": (test["instruction"] + "\n\n" + test["input"])
            .str.strip()
            .iloc[picked]
            .to_numpy(),
            "reference": test["output"].iloc[picked].to_numpy(),
        }
    )
    for e in result.evals:
        sheet[f"{e.name}_output"] = [e.outputs[i] for i in picked]
        sheet[f"{e.name}_rating_1to5"] = ""
    sheet["preferred_model"] = ""
    sheet["comments"] = ""
    return sheet


def metric_bars(metrics: dict[str, Any], target: Path) -> None:
    """The row metrics of every model with their bootstrap CIs, all on a 0-100 scale."""
    from sftops.plots import interval_bars

    scale = {m: 1.0 if m == "chrf" else 100.0 for m in ROW_METRICS}  # chrF is already 0-100
    title = f"Test split, {metrics['test_rows']} rows"
    interval_bars(metrics["intervals"], list(ROW_METRICS), target, title, scale)


def confusion_plot(report: dict[str, Any], target: Path, title: str) -> None:
    from sftops.plots import confusion_matrix

    cm = report["confusion_matrix"]
    confusion_matrix(cm["matrix"], cm["rows"], cm["columns"], target, title)


def summary_markdown(metrics: dict[str, Any]) -> str:
    models = metrics["models"]
    columns = [
        "exact_match",
        "token_f1",
        "chrf",
        "rouge_l",
        "bleu",
        "accuracy",
        "macro_f1",
        "perplexity",
        "hit_max_new_tokens",
    ]
    lines = [
        "# Evaluation",
        "",
        f"Test rows: {metrics['test_rows']} (set {metrics['test_set']}); rows without a "
        f"reference skipped: {metrics['skipped_no_reference']}",
        "",
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, m in models.items():
        cells = [
            f"{m[c]:.4g}" if isinstance(m.get(c), float) else str(m.get(c, "-")) for c in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for pair, diffs in metrics["differences"].items():
        lines += [
            "",
            f"## {pair} (paired bootstrap, 95% CI)",
            "",
            "| metric | diff | CI | p |",
            "|---|---:|---|---:|",
        ]
        for metric, d in diffs.items():
            lines.append(
                f"| {metric} | {d['diff']:+.4f} | [{d['ci'][0]:+.4f}, "
                f"{d['ci'][1]:+.4f}] | {d['p_value']:.3f} |"
            )
    first: dict[str, Any] = next(iter(models.values()), {})
    sig = first.get("bleu_signature", "")
    lines += ["", f"BLEU signature: `{sig}`"]
    return "\n".join(lines) + "\n"


def run_evaluate(params: Params, candidate: Path | None = None) -> dict[str, Any]:
    """The edge: evaluate, then write metrics, predictions, plots, summary and the sheet."""
    result = evaluate(params, candidate)
    reports = Path(params.paths.reports_dir)
    metrics = result.metrics()
    write_json(metrics, reports / "metrics.json")
    write_jsonl(prediction_records(result), reports / "predictions.jsonl")
    sheet = human_eval_sheet(result, params.evaluate.human_eval_rows)
    with atomic_path(reports / "human_eval.csv") as tmp:
        sheet.to_csv(tmp, index=False)
    write_text(summary_markdown(metrics), reports / "evaluation.md")
    metric_bars(metrics, reports / "metrics.png")
    candidate_eval = next(e for e in result.evals if e.name == "candidate")
    empty = {"confusion_matrix": {"matrix": [[0]], "rows": ["-"], "columns": ["-"]}}
    confusion_plot(
        candidate_eval.classification or empty,
        reports / "confusion_matrix.png",
        "candidate: classification rows"
        if candidate_eval.classification
        else "no labelled rows in the test split",
    )
    return metrics


__all__ = ["prompts_for", "run_evaluate"]
