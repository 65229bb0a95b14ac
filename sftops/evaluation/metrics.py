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
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

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

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff"
_CJK_RE = re.compile(f"[{_CJK}]")
# One CJK character, or a run of other letters/digits (ASCII words, accented words, numbers).
_MIXED_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_WS_AROUND_CJK_RE = re.compile(f"(?<=[{_CJK}])\\s+|\\s+(?=[{_CJK}])")
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
# Symbols that full-width Chinese text uses besides the Unicode "P*" punctuation categories.
_EXTRA_PUNCT = frozenset("～￥｀＾｜＋＝＜＞")
_ASCII_PUNCT = frozenset(string.punctuation)


@dataclass(frozen=True)
class MetricResult:
    """A corpus score (0-100 for BLEU/chrF) with the sacreBLEU signature that reproduces it."""

    score: float
    signature: str
    n: int = 0  # rows scored


class BootstrapResult(TypedDict):
    """What :func:`paired_bootstrap` and :func:`bootstrap_corpus_metric` return.

    ``ci_*`` are percentile intervals ``(low, high)`` at level ``ci``. The ``*_b`` / ``*diff``
    keys and ``frac_a_gt_b`` / ``p_value`` are present only when system B is given:
    ``frac_a_gt_b`` is the fraction of resamples where A scores strictly higher than B, and
    ``p_value`` = fraction where A <= B (one-sided bootstrap p-value for "A is better").
    """

    n: int
    n_resamples: int
    ci: float
    mean_a: float
    ci_a: tuple[float, float]
    mean_b: NotRequired[float]
    ci_b: NotRequired[tuple[float, float]]
    mean_diff: NotRequired[float]
    ci_diff: NotRequired[tuple[float, float]]
    frac_a_gt_b: NotRequired[float]
    p_value: NotRequired[float]


# --------------------------------------------------------------------------------------------
# Helpers


def is_chinese(lang: str) -> bool:
    """True for Chinese language codes (base ``zh``, any region/script suffix).

    >>> is_chinese("zh"), is_chinese("zh-Hant"), is_chinese("ZH_cn"), is_chinese("en")
    (True, True, True, False)
    """
    return re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0] == "zh"


def char_tokenize(text: str) -> list[str]:
    """Lower-cased tokens: each CJK character alone, runs of other letters/digits as words;
    punctuation and whitespace are dropped.

    >>> char_tokenize("法国的首都是Paris 2024年！")
    ['法', '国', '的', '首', '都', '是', 'paris', '2024', '年']
    """
    return _MIXED_TOKEN_RE.findall(text.lower())


def _check_lengths(**named: Sized) -> None:
    lengths = {name: len(seq) for name, seq in named.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have the same length, got {detail}")


def _group_rows(langs: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        groups.setdefault(lang, []).append(i)
    return groups


# --------------------------------------------------------------------------------------------
# BLEU / chrF


def bleu_tokenizer(lang: str) -> str:
    """The sacreBLEU tokenizer for a language: ``zh`` for Chinese, ``13a`` otherwise.

    >>> bleu_tokenizer("zh-CN"), bleu_tokenizer("en")
    ('zh', '13a')
    """
    return "zh" if is_chinese(lang) else "13a"


@cache
def _bleu(tokenize: str) -> BLEU:
    return BLEU(tokenize=tokenize)


@cache
def _chrf() -> CHRF:
    return CHRF()


_Metric = BLEU | CHRF


def _metric_for(kind: Literal["bleu", "chrf"], lang: str) -> _Metric:
    return _bleu(bleu_tokenizer(lang)) if kind == "bleu" else _chrf()


def _signature(metric: _Metric) -> str:
    try:
        return str(metric.get_signature())
    except ValueError:  # never evaluated yet: sacreBLEU needs the reference count first
        metric.corpus_score(["a"], [["a"]])
        return str(metric.get_signature())


def _by_lang(
    kind: Literal["bleu", "chrf"],
    hypotheses: Sequence[str],
    references: Sequence[str],
    langs: Sequence[str],
) -> dict[str, MetricResult]:
    _check_lengths(hypotheses=hypotheses, references=references, langs=langs)
    out: dict[str, MetricResult] = {}
    for lang, rows in _group_rows(langs).items():
        metric = _metric_for(kind, lang)
        score = metric.corpus_score([hypotheses[i] for i in rows], [[references[i] for i in rows]])
        out[lang] = MetricResult(float(score.score), _signature(metric), len(rows))
    return out


def _overall(kind: Literal["bleu", "chrf"], groups: dict[str, MetricResult]) -> MetricResult:
    if not groups:
        return MetricResult(0.0, _signature(_metric_for(kind, "en")), 0)
    if len(groups) == 1:
        return next(iter(groups.values()))
    n = sum(g.n for g in groups.values())
    score = sum(g.score * g.n for g in groups.values()) / n
    parts = "; ".join(f"{lang}:{g.n} {g.signature}" for lang, g in sorted(groups.items()))
    return MetricResult(score, f"mean-by-rows[{parts}]", n)


def bleu_by_lang(
    hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str]
) -> dict[str, MetricResult]:
    """sacreBLEU corpus BLEU for each language group (tokenizer ``zh`` for Chinese, else ``13a``).

    >>> texts = ["the cat sat on the mat", "猫坐在垫子上"]
    >>> r = bleu_by_lang(texts, texts, ["en", "zh"])
    >>> {lang: (round(m.score), m.signature.split("|")[3]) for lang, m in r.items()}
    {'en': (100, 'tok:13a'), 'zh': (100, 'tok:zh')}
    """
    return _by_lang("bleu", hypotheses, references, langs)


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str]
) -> MetricResult:
    """Corpus BLEU (0-100) with its sacreBLEU signature, one reference per row.

    A single language is exactly ``sacrebleu.corpus_bleu`` with that language's tokenizer; with
    several languages the score is the row-count-weighted mean of :func:`bleu_by_lang`. An empty
    corpus scores ``0.0``.

    >>> r = corpus_bleu(["猫坐在垫子上"], ["猫坐在垫子上"], ["zh"])
    >>> round(r.score, 6), r.signature
    (100.0, 'nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0')
    """
    return _overall("bleu", bleu_by_lang(hypotheses, references, langs))


def chrf_by_lang(
    hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str]
) -> dict[str, MetricResult]:
    """sacreBLEU corpus chrF (default: character 6-grams, beta 2) for each language group.

    >>> r = chrf_by_lang(["the cat"], ["the cat"], ["en"])
    >>> round(r["en"].score, 6), r["en"].n
    (100.0, 1)
    """
    return _by_lang("chrf", hypotheses, references, langs)


def corpus_chrf(
    hypotheses: Sequence[str], references: Sequence[str], langs: Sequence[str]
) -> MetricResult:
    """Corpus chrF (0-100) with signature; mixed languages are combined as in
    :func:`corpus_bleu` (row-count-weighted mean of the per-language corpus scores).

    >>> r = corpus_chrf([], [], [])
    >>> r.score, r.n, r.signature.startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0")
    (0.0, 0, True)
    """
    return _overall("chrf", chrf_by_lang(hypotheses, references, langs))


def sentence_chrf(hypothesis: str, reference: str, lang: str = "en") -> float:
    """Sentence-level chrF (0-100), a per-row score for :func:`paired_bootstrap`.

    chrF compares character n-grams with whitespace removed, so the same configuration suits
    Chinese; ``lang`` is accepted for a uniform per-row API.

    >>> sentence_chrf("猫坐在垫子上", "猫坐在垫子上", "zh"), sentence_chrf("abc", "xyz")
    (100.0, 0.0)
    """
    del lang
    return float(_chrf().sentence_score(hypothesis, [reference]).score)


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


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or ch in _EXTRA_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str, lang: str = "en") -> str:
    """SQuAD answer normalisation: lower-case, drop punctuation (ASCII and Unicode, so Chinese
    ``，。！？“”《》`` too), drop the articles a/an/the (English only: any non-Chinese ``lang``),
    and collapse whitespace. For Chinese, whitespace next to a CJK character is removed.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    >>> normalize_answer(" 巴 黎， 法国。", "zh"), normalize_answer("iPhone 15 手机", "zh")
    ('巴黎法国', 'iphone 15手机')
    """
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    if is_chinese(lang):
        return _WS_AROUND_CJK_RE.sub("", " ".join(text.split()))
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def _answer_tokens(text: str, lang: str) -> list[str]:
    normalized = normalize_answer(text, lang)
    return char_tokenize(normalized) if is_chinese(lang) else normalized.split()


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
    pred, ref = _answer_tokens(prediction, lang), _answer_tokens(reference, lang)
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

    _check_lengths(pred_labels=pred_labels, gold=gold)
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


# --------------------------------------------------------------------------------------------
# Bootstrap


def _check_bootstrap_args(n_resamples: int, ci: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")


def _interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) matrix: how often each row is drawn in each resample (rows with
    replacement, n draws per resample). Memory is O(n_resamples * n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = (idx + (np.arange(n_resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n)


def _summarise(
    n: int,
    n_resamples: int,
    ci: float,
    point_a: float,
    boot_a: np.ndarray,
    point_b: float | None = None,
    boot_b: np.ndarray | None = None,
) -> BootstrapResult:
    result: BootstrapResult = {
        "n": n,
        "n_resamples": n_resamples,
        "ci": ci,
        "mean_a": point_a,
        "ci_a": _interval(boot_a, ci),
    }
    if point_b is not None and boot_b is not None:
        diff = boot_a - boot_b
        result["mean_b"] = point_b
        result["ci_b"] = _interval(boot_b, ci)
        result["mean_diff"] = point_a - point_b
        result["ci_diff"] = _interval(diff, ci)
        result["frac_a_gt_b"] = float(np.mean(diff > 0))
        result["p_value"] = float(np.mean(diff <= 0))
    return result


def _empty_result(n_resamples: int, ci: float, paired: bool) -> BootstrapResult:
    nan, nan_ci = math.nan, (math.nan, math.nan)
    result: BootstrapResult = {
        "n": 0,
        "n_resamples": n_resamples,
        "ci": ci,
        "mean_a": nan,
        "ci_a": nan_ci,
    }
    if paired:
        result["mean_b"] = result["mean_diff"] = nan
        result["ci_b"] = result["ci_diff"] = nan_ci
        result["frac_a_gt_b"] = result["p_value"] = nan
    return result


def paired_bootstrap(
    scores_a: np.ndarray | Sequence[float],
    scores_b: np.ndarray | Sequence[float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> BootstrapResult:
    """Bootstrap over per-row scores (token F1, exact match, sentence chrF, ...).

    Rows are resampled with replacement ``n_resamples`` times (the same rows for A and B, so
    the comparison is paired). ``mean_a`` is the plain mean; ``ci_a`` the percentile interval
    of the resampled means. With ``scores_b``: ``mean_diff`` = mean(A) - mean(B) with
    ``ci_diff``, ``frac_a_gt_b`` and ``p_value`` (see :class:`BootstrapResult`). The same seed
    gives the same result. No rows gives NaN everywhere.

    >>> r = paired_bootstrap([1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], n_resamples=200)
    >>> r["mean_a"], r["mean_diff"], r["ci_a"][0] <= r["mean_a"] <= r["ci_a"][1]
    (0.75, 0.5, True)
    """
    _check_bootstrap_args(n_resamples, ci)
    a = np.asarray(scores_a, dtype=float).reshape(-1)
    b = None if scores_b is None else np.asarray(scores_b, dtype=float).reshape(-1)
    if b is not None:
        _check_lengths(scores_a=a, scores_b=b)
    n = a.size
    if n == 0:
        return _empty_result(n_resamples, ci, b is not None)
    counts = _resample_counts(n, n_resamples, seed)
    boot_a = counts @ a / n
    if b is None:
        return _summarise(n, n_resamples, ci, float(a.mean()), boot_a)
    boot_b = counts @ b / n
    return _summarise(n, n_resamples, ci, float(a.mean()), boot_a, float(b.mean()), boot_b)


CorpusMetricFn = Callable[[list[str], list[str], list[str]], "float | MetricResult"]


def _stats_scores(
    kind: Literal["bleu", "chrf"],
    hypotheses: Sequence[str],
    references: Sequence[str],
    langs: Sequence[str],
    counts: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Point score and per-resample scores from sacreBLEU sufficient statistics: n-gram
    statistics are extracted once per row, each resample only sums them (a matrix product)
    and computes the score, as ``sacrebleu.significance`` does."""
    n = len(hypotheses)
    groups = _group_rows(langs)
    point = 0.0
    boot = np.zeros(counts.shape[0])
    for lang, rows in groups.items():
        metric = _metric_for(kind, lang)
        stats = np.asarray(
            metric._extract_corpus_statistics(
                [hypotheses[i] for i in rows], [[references[i] for i in rows]]
            ),
            dtype=np.int64,
        )
        point += len(rows) / n * float(metric._compute_score_from_stats(stats.sum(0)).score)
        weights = counts[:, rows]
        sums = weights @ stats
        boot += np.array([float(metric._compute_score_from_stats(s).score) for s in sums]) * (
            weights.sum(1) / n
        )
    return point, boot


def bootstrap_corpus_metric(
    hypotheses: Sequence[str],
    references: Sequence[str],
    metric_fn: Literal["bleu", "chrf"] | CorpusMetricFn,
    langs: Sequence[str] | None = None,
    *,
    hypotheses_b: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> BootstrapResult:
    """Bootstrap a corpus-level metric by resampling rows and recomputing it.

    ``metric_fn`` is ``"bleu"`` or ``"chrf"`` (fast: per-row sacreBLEU statistics are
    extracted once and summed per resample; mixed languages combine as in :func:`corpus_bleu`)
    or any ``fn(hypotheses, references, langs)`` returning a float or :class:`MetricResult`
    (e.g. :func:`corpus_bleu`; recomputed on every resample, so slower). ``langs`` defaults to
    all ``"en"``. With ``hypotheses_b`` the comparison is paired (same resampled rows for both
    systems) and the result has the difference keys of :class:`BootstrapResult`; ``mean_a`` /
    ``mean_b`` are the metric on the full corpus. Deterministic for a seed; the resampled rows
    match :func:`paired_bootstrap` with the same ``n``, ``n_resamples`` and ``seed``.

    >>> hyps, refs = ["the cat sat", "a dog ran"], ["the cat sat", "the dog ran"]
    >>> r = bootstrap_corpus_metric(hyps, refs, "bleu", n_resamples=50)
    >>> r["mean_a"] == corpus_bleu(hyps, refs, ["en", "en"]).score
    True
    """
    _check_bootstrap_args(n_resamples, ci)
    langs = ["en"] * len(hypotheses) if langs is None else list(langs)
    _check_lengths(hypotheses=hypotheses, references=references, langs=langs)
    if hypotheses_b is not None:
        _check_lengths(hypotheses=hypotheses, hypotheses_b=hypotheses_b)
    n = len(hypotheses)
    if n == 0:
        return _empty_result(n_resamples, ci, hypotheses_b is not None)
    counts = _resample_counts(n, n_resamples, seed)
    systems = [hypotheses] if hypotheses_b is None else [hypotheses, hypotheses_b]
    points: list[float] = []
    boots: list[np.ndarray] = []
    for hyps in systems:
        if isinstance(metric_fn, str):
            if metric_fn not in ("bleu", "chrf"):
                raise ValueError(f"metric_fn must be 'bleu', 'chrf' or a callable: {metric_fn!r}")
            point, boot = _stats_scores(metric_fn, hyps, references, langs, counts)
        else:
            point = _as_float(metric_fn(list(hyps), list(references), list(langs)))
            boot = np.empty(n_resamples)
            for r, row_counts in enumerate(counts):
                idx: list[int] = np.repeat(np.arange(n), row_counts).tolist()
                sample = (
                    [hyps[i] for i in idx],
                    [references[i] for i in idx],
                    [langs[i] for i in idx],
                )
                boot[r] = _as_float(metric_fn(*sample))
        points.append(point)
        boots.append(boot)
    if hypotheses_b is None:
        return _summarise(n, n_resamples, ci, points[0], boots[0])
    return _summarise(n, n_resamples, ci, points[0], boots[0], points[1], boots[1])


def _as_float(value: float | MetricResult) -> float:
    return float(value.score) if isinstance(value, MetricResult) else float(value)
