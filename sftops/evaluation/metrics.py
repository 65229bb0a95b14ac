"""Evaluation metrics: pure functions over lists of strings, labels and per-token NLLs.

Every row carries a language code (``lang``: ``"en"``, ``"zh"``, ...). Chinese has no spaces
between words, so for Chinese rows (any code whose base is ``zh``: ``zh``, ``zh-CN``,
``zh-Hant``) the metrics work on characters:

* BLEU uses sacreBLEU's ``zh`` tokenizer (every CJK character a token), other languages ``13a``.
* ROUGE-L, token F1 and exact match split Chinese into characters and keep runs of ASCII
  letters/digits as words (``"iPhone 15 很好"`` -> ``iphone``, ``15``, ``很``, ``好``).
* chrF is character-based already; every language uses the same (default) configuration.

**Mixed-language corpora.** sacreBLEU cannot use two tokenizers in one corpus call, so
:func:`bleu_by_lang` / :func:`chrf_by_lang` score each language group on its own, and the overall
figure from :func:`corpus_bleu` / :func:`corpus_chrf` is the **row-count-weighted mean of the
per-language corpus scores** (with a single language it is exactly sacreBLEU's corpus score).
Its signature lists each group, e.g. ``mean-by-rows[en:3 nrefs:1|...|tok:13a|...; zh:2 ...]``.

**Empty inputs.** Corpus BLEU/chrF of an empty corpus is ``0.0`` (what sacreBLEU gives for an
all-empty system); means over no rows (accuracy, macro-F1, NLL, bootstrap means) are ``NaN``.
Lists that must be parallel but differ in length raise :class:`ValueError` naming the lengths.

This module is the metrics API that evaluation calls, and holds the per-row and classification
metrics; the text side (language codes, normalisation, tokens) is :mod:`~sftops.evaluation.tokens`,
corpus BLEU / chrF :mod:`~sftops.evaluation.corpus`, the bootstrap CIs
:mod:`~sftops.evaluation.bootstrap`; their public names are importable from here.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
from rouge_score import rouge_scorer

from sftops.evaluation.bootstrap import BootstrapResult, bootstrap_corpus_metric, paired_bootstrap
from sftops.evaluation.corpus import (
    MetricResult,
    bleu_by_lang,
    bleu_tokenizer,
    check_lengths,
    chrf_by_lang,
    corpus_bleu,
    corpus_chrf,
    sentence_chrf,
)
from sftops.evaluation.tokens import answer_tokens, char_tokenize, is_chinese, normalize_answer

__all__ = [
    "UNPARSEABLE",
    "BootstrapResult",
    "MetricResult",
    "bleu_by_lang",
    "bleu_tokenizer",
    "bootstrap_corpus_metric",
    "char_tokenize",
    "chrf_by_lang",
    "classification_report",
    "corpus_bleu",
    "corpus_chrf",
    "exact_match",
    "is_chinese",
    "mean_nll_and_perplexity",
    "normalize_answer",
    "paired_bootstrap",
    "parse_label",
    "rouge_l",
    "sentence_chrf",
    "token_f1",
]

#: Column name of unparseable predictions in the confusion matrix.
UNPARSEABLE = "unparseable"


# --------------------------------------------------------------------------------------------
# ROUGE-L


class _CharTokenizer:
    """rouge-score tokenizer object: CJK characters one by one, other words kept whole."""

    def tokenize(self, text: str) -> list[str]:
        return char_tokenize(text)


@cache
def _rouge_scorer(chinese: bool) -> rouge_scorer.RougeScorer:
    if chinese:
        return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CharTokenizer())
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(hypothesis: str, reference: str, lang: str = "en") -> float:
    """ROUGE-L F-measure in [0, 1]: rouge-score with Porter stemming for non-Chinese text;
    for Chinese, character tokens (rouge-score's default tokenizer would drop all of them).

    Empty hypothesis or reference gives ``0.0``.

    >>> round(rouge_l("The cats sat on the mat", "the cat lay on the mat"), 4)
    0.8333
    >>> round(rouge_l("猫坐在垫子上", "猫躺在垫子上", "zh"), 4)
    0.8333
    """
    scorer = _rouge_scorer(is_chinese(lang))
    return float(scorer.score(reference, hypothesis)["rougeL"].fmeasure)


# --------------------------------------------------------------------------------------------
# SQuAD-style exact match and token F1


def exact_match(prediction: str, reference: str, lang: str = "en") -> float:
    """1.0 when the normalised answers are equal, else 0.0.

    >>> exact_match("The Louvre.", "louvre"), exact_match("巴黎。", "巴黎", "zh")
    (1.0, 1.0)
    """
    return float(normalize_answer(prediction, lang) == normalize_answer(reference, lang))


def token_f1(prediction: str, reference: str, lang: str = "en") -> float:
    """SQuAD token-overlap F1 in [0, 1]; words for most languages, characters for Chinese.

    As in SQuAD v2, when either side normalises to no tokens the score is 1.0 if both do,
    else 0.0.

    >>> round(token_f1("the cat sat", "a cat sat on the mat"), 4)
    0.6667
    >>> round(token_f1("巴黎市", "巴黎", "zh"), 4)
    0.8
    """
    pred, ref = answer_tokens(prediction, lang), answer_tokens(reference, lang)
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------
# Classification


def _term_pattern(term: str) -> str:
    escaped = re.escape(term)
    # ASCII-word edges need a boundary (so "positive" is not found in "positively"), judged
    # against ASCII letters/digits only, so "情感:positive" still matches; CJK terms need none.
    start = r"(?<![0-9a-z])" if re.match(r"[0-9a-z]", term) else ""
    end = r"(?![0-9a-z])" if re.search(r"[0-9a-z]$", term) else ""
    return f"{start}{escaped}{end}"


def parse_label(
    generation: str,
    labels: Sequence[str],
    aliases: Mapping[str, str] | None = None,
) -> str | None:
    """Which allowed label a generation states, or ``None``.

    Labels and alias keys are matched case-insensitively; ASCII terms only as whole words
    (``positive`` is not found in ``positively``), CJK terms as substrings. Overlapping terms
    are resolved left to right, longest first. Returns the label (as spelled in ``labels``)
    when every match names the same label; ``None`` when nothing matches (unparseable) or when
    two different labels are named (ambiguous). Negation is not understood: ``"not positive"``
    reads as ``positive``.

    >>> parse_label("Sentiment: Positive.", ["positive", "negative"])
    'positive'
    >>> aliases = {"正面": "positive", "负面": "negative", "积极": "positive", "消极": "negative"}
    >>> parse_label("这条评论是正面的，很积极。", ["positive", "negative"], aliases)
    'positive'
    >>> parse_label("positive or negative?", ["positive", "negative"]) is None
    True
    >>> parse_label("It is positively great", ["positive", "negative"]) is None
    True
    """
    canonical: dict[str, str] = {label.lower(): label for label in labels}
    for alias, target in (aliases or {}).items():
        if target.lower() not in canonical:
            raise ValueError(f"alias {alias!r} maps to {target!r}, which is not in {list(labels)}")
        canonical.setdefault(alias.lower(), canonical[target.lower()])
    terms = sorted((t for t in canonical if t), key=len, reverse=True)
    if not terms or not generation:
        return None
    pattern = re.compile("|".join(_term_pattern(t) for t in terms))
    found = {canonical[m.group(0)] for m in pattern.finditer(generation.lower())}
    return found.pop() if len(found) == 1 else None


def classification_report(
    pred_labels: Sequence[str | None],
    gold: Sequence[str],
    labels: Sequence[str],
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and the confusion matrix for parsed predictions.

    ``None`` predictions are unparseable: wrong for accuracy, a miss (false negative) for their
    gold class and a false positive for no class. Returns::

        {"n", "accuracy", "macro_f1", "n_unparseable", "unparseable_rate",
         "per_class": {label: {"precision", "recall", "f1", "support"}},
         "confusion_matrix": {"rows": labels (gold), "columns": labels + ["unparseable"],
                              "matrix": list of rows of counts}}

    Macro-F1 is sklearn's over ``labels`` (zero_division=0). With no rows, accuracy, macro-F1
    and the unparseable rate are NaN. A gold or predicted label outside ``labels`` raises
    :class:`ValueError`.

    >>> r = classification_report(["a", None, "b"], ["a", "b", "b"], ["a", "b"])
    >>> round(r["accuracy"], 4), r["n_unparseable"], r["confusion_matrix"]["matrix"]
    (0.6667, 1, [[1, 0, 0], [0, 1, 1]])
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    check_lengths(pred_labels=pred_labels, gold=gold)
    labels = list(labels)
    if len(set(labels)) != len(labels) or UNPARSEABLE in labels:
        raise ValueError(f"labels must be distinct and not {UNPARSEABLE!r}: {labels}")
    allowed = set(labels)
    if bad := sorted({g for g in gold if g not in allowed}):
        raise ValueError(f"gold labels not in labels {labels}: {bad}")
    if bad_pred := sorted({p for p in pred_labels if p is not None and p not in allowed}):
        raise ValueError(f"predicted labels not in labels {labels}: {bad_pred}")

    n = len(gold)
    pred = [UNPARSEABLE if p is None else p for p in pred_labels]
    n_unparseable = pred.count(UNPARSEABLE)
    columns = [*labels, UNPARSEABLE]
    if n == 0:
        matrix = [[0] * len(columns) for _ in labels]
        precision = recall = f1 = np.zeros(len(labels))
        support = np.zeros(len(labels), dtype=int)
        accuracy = macro_f1 = unparseable_rate = math.nan
    else:
        matrix = confusion_matrix(gold, pred, labels=columns)[: len(labels)].tolist()
        precision, recall, f1, support = precision_recall_fscore_support(
            gold, pred, labels=labels, zero_division=0
        )
        accuracy = sum(p == g for p, g in zip(pred, gold, strict=True)) / n
        macro_f1 = float(np.mean(f1)) if labels else math.nan
        unparseable_rate = n_unparseable / n
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "n": n,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "n_unparseable": n_unparseable,
        "unparseable_rate": unparseable_rate,
        "per_class": per_class,
        "confusion_matrix": {"rows": labels, "columns": columns, "matrix": matrix},
    }


# --------------------------------------------------------------------------------------------
# Likelihood


def mean_nll_and_perplexity(token_nlls: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Token-weighted mean negative log-likelihood (nats) over all references, and its exp.

    Every token counts once, so long references weigh more than short ones. No tokens at all
    gives ``(nan, nan)``; an overflowing exp gives ``inf``.

    >>> mean_nll_and_perplexity([[1.0, 2.0], [3.0]])[0]
    2.0
    >>> mean_nll_and_perplexity([[], []])
    (nan, nan)
    """
    count = sum(len(row) for row in token_nlls)
    if count == 0:
        return math.nan, math.nan
    mean = math.fsum(math.fsum(row) for row in token_nlls) / count
    try:
        ppl = math.exp(mean)
    except OverflowError:
        ppl = math.inf
    return mean, ppl
