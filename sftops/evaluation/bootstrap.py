"""Bootstrap confidence intervals: per-row scores (paired between two systems) and corpus metrics
(BLEU / chrF from per-row sacreBLEU statistics, or any corpus function recomputed per resample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, NotRequired, TypedDict

import numpy as np

from sftops.evaluation.corpus import MetricResult, check_lengths, group_rows, metric_for


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
        check_lengths(scores_a=a, scores_b=b)
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
    groups = group_rows(langs)
    point = 0.0
    boot = np.zeros(counts.shape[0])
    for lang, rows in groups.items():
        metric = metric_for(kind, lang)
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

    >>> from sftops.evaluation.corpus import corpus_bleu
    >>> hyps, refs = ["the cat sat", "a dog ran"], ["the cat sat", "the dog ran"]
    >>> r = bootstrap_corpus_metric(hyps, refs, "bleu", n_resamples=50)
    >>> r["mean_a"] == corpus_bleu(hyps, refs, ["en", "en"]).score
    True
    """
    _check_bootstrap_args(n_resamples, ci)
    langs = ["en"] * len(hypotheses) if langs is None else list(langs)
    check_lengths(hypotheses=hypotheses, references=references, langs=langs)
    if hypotheses_b is not None:
        check_lengths(hypotheses=hypotheses, hypotheses_b=hypotheses_b)
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
