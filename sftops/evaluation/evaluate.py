"""The evaluate stage: base vs candidate on the same held-out test rows.

Every model answers the same prompts (the training chat template, batched KV-cache decoding);
per-row scores feed corpus metrics and paired-bootstrap confidence intervals, so a promotion is
decided on differences that are larger than the noise.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sftops.config import EvaluateParams, Params
from sftops.errors import SftopsError, StageFailed
from sftops.evaluation import metrics as M

log = logging.getLogger("sftops.evaluate")
ROW_METRICS = ("exact_match", "token_f1", "chrf", "rouge_l")


@dataclass
class ModelEval:
    name: str
    path: str
    outputs: list[str]
    hit_max_new_tokens: int
    row_scores: dict[str, np.ndarray]
    corpus: dict[str, Any]
    classification: dict[str, Any] | None
    predicted_labels: list[str | None] = field(default_factory=list)


def test_set_fingerprint(row_ids: list[str]) -> str:
    """A hash of the evaluated row ids: reports computed on different rows never compare.

    >>> test_set_fingerprint(["b", "a"]) == test_set_fingerprint(["a", "b"])
    True
    """
    return hashlib.blake2b("\n".join(sorted(row_ids)).encode(), digest_size=8).hexdigest()


def prompts_for(test: pd.DataFrame, tokenizer: Any) -> list[str]:
    from sftops.modeling.formatting import generation_prompt, row_to_messages

    return [
        generation_prompt(tokenizer, row_to_messages(row, include_output=False))
        for row in test.to_dict(orient="records")
    ]


def reference_nll(model: Any, tokenizer: Any, test: pd.DataFrame, params: Params) -> float:
    """Mean per-token NLL of the reference answers under the model (teacher forcing)."""
    import torch

    from sftops.modeling.data import build_rows, encode_rows
    from sftops.modeling.loss import mean_loss

    examples, _ = encode_rows(test, tokenizer, params.train.max_length)
    rows = build_rows(examples, params.train)
    if not rows:
        return math.nan
    return mean_loss(
        model,
        rows,
        params.train.batch_size,
        tokenizer.pad_token_id,
        params.train.packing,
        model.device,
        None if model.device.type == "cpu" else torch.bfloat16,
    )


def score_outputs(
    outputs: list[str], test: pd.DataFrame, cfg: EvaluateParams, labels: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any] | None, list[str | None]]:
    """Per-row scores, corpus metrics and the classification report for one model."""
    refs = test["output"].tolist()
    langs = test["lang"].tolist()
    row_scores = {
        "exact_match": np.array(
            [M.exact_match(o, r, lg) for o, r, lg in zip(outputs, refs, langs, strict=True)]
        ),
        "token_f1": np.array(
            [M.token_f1(o, r, lg) for o, r, lg in zip(outputs, refs, langs, strict=True)]
        ),
        "chrf": np.array(
            [M.sentence_chrf(o, r, lg) for o, r, lg in zip(outputs, refs, langs, strict=True)]
        ),
        "rouge_l": np.array(
            [M.rouge_l(o, r, lg) for o, r, lg in zip(outputs, refs, langs, strict=True)]
        ),
    }
    bleu = M.corpus_bleu(outputs, refs, langs)
    chrf = M.corpus_chrf(outputs, refs, langs)
    corpus = {
        "bleu": bleu.score,
        "bleu_signature": bleu.signature,
        "chrf_corpus": chrf.score,
        "chrf_signature": chrf.signature,
        "bleu_by_lang": {k: v.score for k, v in M.bleu_by_lang(outputs, refs, langs).items()},
    }
    labelled = test["label"].notna().to_numpy()
    predicted: list[str | None] = [None] * len(outputs)
    report = None
    if labelled.any():
        for i in np.flatnonzero(labelled):
            predicted[i] = M.parse_label(outputs[i], labels, cfg.label_aliases)
        gold = test.loc[labelled, "label"].astype(str).tolist()
        present = sorted(set(gold) | {p for p in predicted if p is not None})
        report = M.classification_report(
            [predicted[i] for i in np.flatnonzero(labelled)],
            gold,
            [lab for lab in labels if lab in present],
        )
    return row_scores, corpus, report, predicted


def evaluate_model(name: str, path: Path, test: pd.DataFrame, params: Params) -> ModelEval:
    from sftops.modeling.generate import generate
    from sftops.modeling.models import load_causal_lm, load_tokenizer

    cfg = params.evaluate
    tokenizer = load_tokenizer(path)
    model: Any = load_causal_lm(path, tokenizer=tokenizer)
    prompts = prompts_for(test, tokenizer)
    cache, key, generations = None, "", None
    if cfg.cache_answers:
        from sftops.evaluation.cache import GenerationCache, folder_fingerprint, generation_key

        cache = GenerationCache(Path(params.paths.cache_dir) / "eval_answers")
        key = generation_key(
            folder_fingerprint(path), prompts, cfg.generation, cfg.engine, model.device.type
        )
        generations = cache.get(key, len(prompts))
        if generations is not None:
            log.info("%s: %d answers from the cache (%s)", name, len(generations), key)
    if generations is None:
        log.info("%s: generating %d answers", name, len(test))
        if cfg.engine == "vllm":
            from sftops.modeling.generate import generate_vllm

            generations = generate_vllm(path, tokenizer, prompts, cfg.generation)
        else:
            generations = generate(model, tokenizer, prompts, cfg.generation, progress=True)
        if cache is not None:
            cache.put(key, generations)
    outputs = [g.text for g in generations]
    row_scores, corpus, report, predicted = score_outputs(
        outputs, test, cfg, params.validate_.labels
    )
    nll = reference_nll(model, tokenizer, test, params)
    corpus.update({"reference_nll": nll, "perplexity": math.exp(nll) if nll == nll else nll})
    return ModelEval(
        name,
        str(path),
        outputs,
        sum(g.hit_max_new_tokens for g in generations),
        row_scores,
        corpus,
        report,
        predicted,
    )


def compare(evals: list[ModelEval], cfg: EvaluateParams) -> dict[str, Any]:
    """Paired bootstrap per metric: each model's mean with a CI, and candidate minus others."""
    by_name = {e.name: e for e in evals}
    out: dict[str, Any] = {"intervals": {}, "differences": {}}
    for e in evals:
        out["intervals"][e.name] = {
            metric: _ci(
                M.paired_bootstrap(e.row_scores[metric], None, n_resamples=cfg.bootstrap_resamples)
            )
            for metric in ROW_METRICS
        }
    candidate = by_name.get("candidate")
    for other in (e for e in evals if candidate is not None and e.name != "candidate"):
        assert candidate is not None
        diffs = {}
        for metric in ROW_METRICS:
            boot = M.paired_bootstrap(
                candidate.row_scores[metric],
                other.row_scores[metric],
                n_resamples=cfg.bootstrap_resamples,
            )
            diffs[metric] = {
                "diff": boot["mean_diff"],
                "ci": list(boot["ci_diff"]),
                "p_value": boot["p_value"],
            }
        out["differences"][f"candidate_vs_{other.name}"] = diffs
    return out


def _ci(boot: M.BootstrapResult) -> dict[str, Any]:
    return {"mean": boot["mean_a"], "ci": list(boot["ci_a"])}


@dataclass
class EvaluateResult:
    test: pd.DataFrame
    evals: list[ModelEval]
    comparison: dict[str, Any]
    skipped_no_reference: int

    def metrics(self) -> dict[str, Any]:
        """What DVC tracks as metrics and the promotion gate reads."""
        models = {}
        for e in self.evals:
            entry: dict[str, Any] = {
                metric: float(np.mean(e.row_scores[metric])) if len(self.test) else math.nan
                for metric in ROW_METRICS
            }
            entry.update({k: v for k, v in e.corpus.items() if not isinstance(v, dict)})
            entry["bleu_by_lang"] = e.corpus["bleu_by_lang"]
            entry["hit_max_new_tokens"] = e.hit_max_new_tokens
            if e.classification is not None:
                entry["accuracy"] = e.classification["accuracy"]
                entry["macro_f1"] = e.classification["macro_f1"]
                entry["unparseable_labels"] = e.classification["n_unparseable"]
            models[e.name] = entry
        return {
            "test_rows": len(self.test),
            "test_set": test_set_fingerprint(self.test["row_id"].tolist()),
            "skipped_no_reference": self.skipped_no_reference,
            "models": models,
            "intervals": self.comparison["intervals"],
            "differences": self.comparison["differences"],
        }


def load_test_rows(params: Params) -> tuple[pd.DataFrame, int]:
    """The evaluated rows of the test split (rows without a reference dropped, then
    ``evaluate.max_rows``) and how many were dropped for having no reference."""
    from sftops.io import read_table

    cfg, paths = params.evaluate, params.paths
    test = read_table(paths.split("test"))
    if test.empty:
        raise StageFailed("test split is empty: nothing to evaluate", file=paths.split("test"))
    missing = test["output"].fillna("").str.strip() == ""
    test = test[~missing].reset_index(drop=True)
    if cfg.max_rows:
        test = test.head(cfg.max_rows)
    return test, int(missing.sum())


def evaluate(params: Params, candidate: Path | None = None) -> EvaluateResult:
    """Evaluate the base model and the candidate on the test split. A pure function of the
    tracked inputs: the registry's champion is compared in a separate step
    (sftops.evaluation.reference), outside the DVC stage."""
    from sftops.modeling.models import resolve_model_path

    cfg, paths = params.evaluate, params.paths
    test, skipped = load_test_rows(params)
    models: list[tuple[str, Path]] = []
    if cfg.compare_base:
        models.append(("base", resolve_model_path(params.train.base_model, paths.cache_dir)))
    candidate = candidate or Path(paths.model_dir)
    if not candidate.is_dir():
        raise SftopsError("candidate model folder not found (run `sftops train`)", file=candidate)
    models.append(("candidate", candidate))
    evals = [evaluate_model(name, path, test, params) for name, path in models]
    return EvaluateResult(test, evals, compare(evals, cfg), skipped)
