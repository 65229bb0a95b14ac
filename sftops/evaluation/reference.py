"""The candidate against a reference model (the registry's champion) on the same test rows.

Not part of the DVC `evaluate` stage, which must be a pure function of its tracked inputs: the
champion is mutable registry state. The orchestration resolves `@champion` to a version and its
folder (sftops.mlops.release) and calls :func:`compare_with_reference` here. The reference's answers
and scores are cached under a key of (reference identity, test-set fingerprint, generation and
scoring params), so comparing the next candidates with the same champion costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.evaluation.evaluate import (
    ROW_METRICS,
    EvaluateResult,
    ModelEval,
    compare,
    evaluate_model,
    load_test_rows,
    test_set_fingerprint,
)
from sftops.io import read_jsonl, write_json

log = logging.getLogger("sftops.evaluate")


def cache_key(reference_id: str, test_set: str, params: Params) -> str:
    """What the reference's scores depend on, hashed."""
    settings = {
        "reference": reference_id,
        "test_set": test_set,
        "generation": params.evaluate.generation.model_dump(mode="json"),
        "max_length": params.train.max_length,
        "labels": params.validate_.labels,
        "aliases": params.evaluate.label_aliases,
    }
    text = json.dumps(settings, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _to_json(e: ModelEval) -> dict[str, Any]:
    return {
        "name": e.name,
        "path": e.path,
        "outputs": e.outputs,
        "hit_max_new_tokens": e.hit_max_new_tokens,
        "row_scores": {k: v.tolist() for k, v in e.row_scores.items()},
        "corpus": e.corpus,
        "classification": e.classification,
        "predicted_labels": e.predicted_labels,
    }


def _from_json(data: dict[str, Any]) -> ModelEval:
    return ModelEval(
        data["name"],
        data["path"],
        data["outputs"],
        data["hit_max_new_tokens"],
        {k: np.asarray(v, dtype=float) for k, v in data["row_scores"].items()},
        data["corpus"],
        data["classification"],
        data["predicted_labels"],
    )


def evaluate_reference(
    name: str, folder: Path, reference_id: str, params: Params, cache_dir: Path
) -> ModelEval:
    """``evaluate_model`` of the reference on the test rows, cached by :func:`cache_key`."""
    test, _ = load_test_rows(params)
    key = cache_key(reference_id, test_set_fingerprint(test["row_id"].tolist()), params)
    cached = Path(cache_dir) / "reference_evals" / f"{key}.json"
    if cached.is_file():
        log.info("%s (%s): scores from the cache (%s)", name, reference_id, cached.name)
        return _from_json(json.loads(cached.read_text(encoding="utf-8")))
    result = evaluate_model(name, folder, test, params)
    write_json(_to_json(result), cached)
    return result


def candidate_from_predictions(
    predictions: list[dict[str, Any]], metrics: dict[str, Any], row_ids: list[str]
) -> ModelEval:
    """The candidate's per-row scores as the evaluate stage recorded them, in ``row_ids`` order.

    >>> preds = [{"row_id": "b", "candidate_output": "B", "candidate_scores": {"token_f1": 1.0}},
    ...          {"row_id": "a", "candidate_output": "A", "candidate_scores": {"token_f1": 0.5}}]
    >>> e = candidate_from_predictions(preds, {"models": {"candidate": {}}}, ["a", "b"])
    >>> e.outputs, e.row_scores["token_f1"].tolist()
    (['A', 'B'], [0.5, 1.0])
    """
    by_id = {p["row_id"]: p for p in predictions}
    missing = [r for r in row_ids if r not in by_id]
    if missing:
        raise SftopsError(
            f"predictions lack {len(missing)} test rows (e.g. {missing[0]}): the evaluate stage "
            "ran on another test split"
        )
    rows = [by_id[r] for r in row_ids]
    metrics_of = rows[0]["candidate_scores"] if rows else {}
    candidate = metrics["models"]["candidate"]
    return ModelEval(
        "candidate",
        "",
        [r["candidate_output"] for r in rows],
        int(candidate.get("hit_max_new_tokens", 0)),
        {m: np.array([r["candidate_scores"][m] for r in rows]) for m in metrics_of},
        {},
        None,
    )


def compare_with_reference(
    params: Params,
    name: str,
    folder: Path,
    reference_id: str,
    cache_dir: Path,
) -> dict[str, Any]:
    """The evaluate stage's report extended with ``name`` (e.g. the champion) evaluated on the
    same rows: its metrics, intervals, the paired differences ``candidate_vs_<name>`` and
    ``reference`` = {name, id}. Reads the stage's metrics.json and predictions.jsonl."""
    reports = Path(params.paths.reports_dir)
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    test, skipped = load_test_rows(params)
    row_ids = test["row_id"].tolist()
    if test_set_fingerprint(row_ids) != metrics.get("test_set"):
        raise SftopsError(
            "the test split changed since the evaluate stage ran: rerun it first",
            file=reports / "metrics.json",
        )
    candidate = candidate_from_predictions(
        read_jsonl(reports / "predictions.jsonl"), metrics, row_ids
    )
    reference = evaluate_reference(name, folder, reference_id, params, cache_dir)
    paired = compare([candidate, reference], params.evaluate)
    entry = EvaluateResult(
        test, [reference], {"intervals": {}, "differences": {}}, skipped
    ).metrics()
    out = dict(metrics)
    out["models"] = {**metrics["models"], name: entry["models"][name]}
    out["intervals"] = {**metrics["intervals"], name: paired["intervals"][name]}
    key = f"candidate_vs_{name}"
    out["differences"] = {**metrics["differences"], key: paired["differences"][key]}
    out["reference"] = {"name": name, "id": reference_id}
    return out


__all__ = ["ROW_METRICS", "compare_with_reference", "evaluate_reference"]
