"""Corpus BLEU and chrF (sacreBLEU, with signatures), per language group and overall.

sacreBLEU cannot use two tokenizers in one corpus call, so each language group is scored on its
own (``zh`` tokenizer for Chinese, ``13a`` otherwise) and the overall figure is the
row-count-weighted mean of the per-language corpus scores (see :mod:`sftops.evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass
from functools import cache
from typing import Literal

from sacrebleu.metrics import BLEU, CHRF

from sftops.evaluation.tokens import is_chinese


@dataclass(frozen=True)
class MetricResult:
    """A corpus score (0-100 for BLEU/chrF) with the sacreBLEU signature that reproduces it."""

    score: float
    signature: str
    n: int = 0  # rows scored


def check_lengths(**named: Sized) -> None:
    lengths = {name: len(seq) for name, seq in named.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have the same length, got {detail}")


def group_rows(langs: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        groups.setdefault(lang, []).append(i)
    return groups


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


def metric_for(kind: Literal["bleu", "chrf"], lang: str) -> _Metric:
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
    check_lengths(hypotheses=hypotheses, references=references, langs=langs)
    out: dict[str, MetricResult] = {}
    for lang, rows in group_rows(langs).items():
        metric = metric_for(kind, lang)
        score = metric.corpus_score([hypotheses[i] for i in rows], [[references[i] for i in rows]])
        out[lang] = MetricResult(float(score.score), _signature(metric), len(rows))
    return out


def _overall(kind: Literal["bleu", "chrf"], groups: dict[str, MetricResult]) -> MetricResult:
    if not groups:
        return MetricResult(0.0, _signature(metric_for(kind, "en")), 0)
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
