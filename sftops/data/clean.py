"""Clean: normalise text, strip markup, scrub PII, filter, and remove exact / near duplicates.

Every input row ends up either in the kept table or in the quarantine with a reason, and the
report counts both (rows in = rows kept + rows quarantined).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sftops.config import CleanParams, Params
from sftops.data.dedup import (
    first_occurrence_of,
    minhash_of_sets,
    near_duplicate_representatives,
)
from sftops.data.langid import detector_languages, fast_languages
from sftops.data.normalise import (
    WORD_OR_CJK_RE,
    _key_of_core,
    _may_repeat,
    _repetition,
    alnum_ratios,
    normalise_text,
    normalise_texts,
    to_simplified,
)
from sftops.data.pii import scrub_column, scrub_json_column, scrub_many
from sftops.io import read_table, write_json, write_jsonl, write_table, write_text
from sftops.parallel import gc_paused, map_row_chunks, row_pool
from sftops.rowkeys import dedup_key, history_texts
from sftops.text import ascii_alnum_core, ascii_words, shingles, word_shingles

TEXT_FIELDS = ("system", "instruction", "input", "output")


def _map_history(history: str, edit: Any) -> str:
    if history == "[]":
        return history
    pairs = json.loads(history)
    return json.dumps([[edit(u), edit(a)] for u, a in pairs], ensure_ascii=False)


def _full_texts(columns: dict[str, list[str]]) -> list[str]:
    """``rowkeys.join_text`` of each row, with ``filter(None, ...)`` skipping the empty parts
    at C speed (this runs twice per row)."""
    out = []
    for system, history, instruction, input_, output in zip(
        columns["system"],
        columns["history"],
        columns["instruction"],
        columns["input"],
        columns["output"],
        strict=True,
    ):
        turns = " ".join(history_texts(history)) if history != "[]" else ""
        out.append(" ".join(filter(None, (system, turns, instruction, input_, output))))
    return out


@dataclass
class CleanResult:
    kept: pd.DataFrame
    quarantine: pd.DataFrame  # the rows plus `reason` and `detail`
    modified: dict[str, int]

    def fingerprint(self) -> str:
        """Hash of the kept and quarantined rows (values and dtypes) and the counts: equal
        fingerprints mean identical clean outputs (used to check that speed-ups change
        nothing)."""

        digest = hashlib.sha256()
        for frame in (self.kept, self.quarantine):
            digest.update(frame.to_json(orient="split", force_ascii=False).encode())
            digest.update(str(list(frame.dtypes.astype(str))).encode())
        digest.update(json.dumps(self.modified, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def summary(self, examples_per_reason: int = 3) -> dict[str, Any]:
        reasons = self.quarantine["reason"].value_counts().to_dict() if len(self.quarantine) else {}
        examples: dict[str, list[dict[str, str]]] = {}
        for reason, group in self.quarantine.groupby("reason", sort=True):
            examples[str(reason)] = [
                {
                    "row_id": r.row_id,
                    "instruction": str(r.instruction)[:120],
                    "output": str(r.output)[:120],
                    "detail": str(r.detail),
                }
                for r in group.head(examples_per_reason).itertuples()
            ]
        rows_in = len(self.kept) + len(self.quarantine)
        return {
            "rows_in": rows_in,
            "rows_kept": len(self.kept),
            "rows_quarantined": len(self.quarantine),
            "quarantined_by_reason": {str(k): int(v) for k, v in reasons.items()},
            "modified": self.modified,
            "kept_by_lang": {str(k): int(v) for k, v in self.kept["lang"].value_counts().items()},
            "examples": examples,
        }


# ------------------------------------------------------------------------------------------
# Per-row work, on chunks of rows (pure functions of their columns; run in worker processes
# for large tables). The global parts (language detector, exact and near dedup) stay in
# clean_table.
# ------------------------------------------------------------------------------------------

HISTORY_FIELDS = (*TEXT_FIELDS, "history")


@dataclass
class _Prepared:
    """A chunk after normalisation and PII scrubbing, with the fast-path language."""

    # Per field (HISTORY_FIELDS): (row in chunk, new text) of the few texts that changed; the
    # unchanged ones (nearly all) do not travel back from the worker.
    changed: dict[str, list[tuple[int, str]]]
    lang: list[str | None]  # None: for the language detector
    normalised: int
    pii: dict[str, Counter[str]]  # per field, kinds in order of first occurrence


def _changes(before: list[str], after: list[str]) -> list[tuple[int, str]]:
    """(position, new text) where ``after`` differs from ``before``."""
    return [(i, a) for i, (a, b) in enumerate(zip(after, before, strict=True)) if a != b]


def _prepare_rows(columns: dict[str, list[str]], cfg: CleanParams) -> _Prepared:
    """Normalise the text fields and history, scrub PII, and guess the language when easy."""

    def edit(text: str) -> str:
        return normalise_text(text, cfg.normalize_unicode, cfg.strip_html)

    out: dict[str, list[str]] = {}
    normalised = 0
    for name in TEXT_FIELDS:
        before = columns[name]
        after = normalise_texts(before, cfg.normalize_unicode, cfg.strip_html)
        normalised += sum(a != b for a, b in zip(after, before, strict=True))
        out[name] = after
    history = [_map_history(h, edit) for h in columns["history"]]
    pii: dict[str, Counter[str]] = {name: Counter() for name in TEXT_FIELDS}
    if cfg.scrub_pii:
        for name in TEXT_FIELDS:
            scrubbed, found_in = scrub_column(out[name], cfg.pii_kinds)
            for _, found in found_in:
                for kind, n in found.items():
                    pii[name][f"pii_{kind}"] += n
            out[name] = scrubbed
        history = [_map_history(h, lambda t: scrub_many([t], cfg.pii_kinds)[0][0]) for h in history]
    out["history"] = history
    changed = {name: _changes(columns[name], out[name]) for name in HISTORY_FIELDS}
    return _Prepared(changed, fast_languages(_full_texts(out)), normalised, pii)


@dataclass
class _Finished:
    """A chunk after to_simplified, the filters, dedup keys and MinHash signatures."""

    simplified: dict[str, list[tuple[int, str]]]  # per field: (row in chunk, new text)
    to_simplified: int
    reason: list[str | None]
    keys: list[str | None]  # exact-dedup key of the rows that passed the filters
    signature_rows: list[int] = field(default_factory=list)  # rows in chunk with a signature
    signatures: np.ndarray | None = None


def _finish_rows(columns: dict[str, list[str]], cfg: CleanParams) -> _Finished:
    """Convert Chinese rows to simplified, apply the filters (first failing one is the reason),
    and for the rows left: the exact-dedup key and the MinHash signature.

    A row whose key an earlier row of the chunk that passed the filters already has is an exact
    duplicate whatever the other chunks hold, so it gets no signature. Lengths, alnum ratios
    and dedup keys of ASCII text are computed column-wise; the rest row by row.
    """
    simplified: dict[str, list[tuple[int, str]]] = {name: [] for name in TEXT_FIELDS}
    n_simplified = 0
    langs, row_ids = columns["lang"], columns["row_id"]
    fields = {name: list(columns[name]) for name in TEXT_FIELDS}
    if cfg.to_simplified:
        for i, lang in enumerate(langs):
            if lang != "zh":
                continue
            for name in TEXT_FIELDS:
                if fields[name][i].isascii():  # no Chinese character: nothing to convert
                    continue
                converted = to_simplified(fields[name][i])
                if converted != fields[name][i]:
                    fields[name][i] = converted
                    simplified[name].append((i, converted))
                    n_simplified += 1
    texts = _full_texts({**fields, "history": columns["history"]})
    n = len(texts)
    if n == 0:
        return _Finished(simplified, n_simplified, [], [])
    lengths = pc.utf8_length(pa.array(texts, pa.string())).to_numpy(zero_copy_only=False)
    instruction_chars = [len(t.strip()) for t in fields["instruction"]]
    output_chars = [len(t.strip()) for t in fields["output"]]
    alnum = np.minimum(alnum_ratios(fields["instruction"]), alnum_ratios(fields["output"]))
    reasons: list[str | None] = []
    keys: list[str | None] = []
    signature_rows: list[int] = []
    token_sets: list[set[str]] = []
    seen: set[str] = set()
    allowed = set(cfg.languages) | {"und"}
    nd = cfg.near_dedup
    bigram_shortcut = nd.enabled and nd.word_ngram == 2
    for i, text in enumerate(texts):
        bigrams: set[str] | None = None
        if instruction_chars[i] < cfg.min_instruction_chars:
            reason: str | None = "empty_instruction"
        elif output_chars[i] < cfg.min_output_chars:
            reason = "empty_output"
        elif lengths[i] > cfg.max_chars:
            reason = "too_long"
        else:
            if text.isascii():
                ascii_, tokens = True, ascii_words(text)
            else:
                lowered = text.lower()
                tokens = WORD_OR_CJK_RE.findall(lowered)
                ascii_ = lowered.isascii()
            # The bigrams bound the trigram repetition (see _may_repeat), and they are the
            # near-dedup shingles of this row.
            if bigram_shortcut and ascii_ and len(tokens) > 2:
                bigrams = word_shingles(tokens, 2)
                repetitive = _may_repeat(len(tokens), len(bigrams), cfg.max_repetition) and (
                    _repetition(tokens) > cfg.max_repetition
                )
            else:
                repetitive = _repetition(tokens) > cfg.max_repetition
            if repetitive:
                reason = "repetitive"
            elif alnum[i] < cfg.min_alnum_ratio:
                reason = "low_alnum_ratio"
            elif langs[i] not in allowed:
                reason = "language"
            else:
                reason = None
        reasons.append(reason)
        key = None
        if reason is None:
            if not cfg.exact_dedup:
                key = row_ids[i]
            elif text.isascii():
                key = _key_of_core(ascii_alnum_core(text))
            else:
                key = dedup_key(text)
            if nd.enabled and key not in seen:
                seen.add(key)
                signature_rows.append(i)
                # On ASCII text the repetition tokens are the shingles' words (\w+ runs).
                if bigrams is not None:
                    token_sets.append(bigrams)
                elif ascii_:
                    token_sets.append(word_shingles(tokens, nd.word_ngram))
                else:
                    token_sets.append(shingles(text, nd.word_ngram, nd.char_ngram))
        keys.append(key)
    signatures = minhash_of_sets(token_sets, nd.num_perm) if token_sets else None
    return _Finished(simplified, n_simplified, reasons, keys, signature_rows, signatures)


def _strings(values: Sequence[str | None] | np.ndarray) -> pd.arrays.ArrowStringArray:
    """``pd.array(values, dtype="string")`` for values that are already strings (or None),
    built by Arrow in one pass instead of pandas' check of every value."""
    return pd.arrays.ArrowStringArray(pa.array(values, pa.large_string()))


def _concat(parts: Sequence[Any], attr: str, name: str | None = None) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        out.extend(getattr(part, attr) if name is None else getattr(part, attr)[name])
    return out


def _apply_changes(
    columns: dict[str, list[str]], parts: Iterable[tuple[dict[str, list[tuple[int, str]]], int]]
) -> None:
    """Write the (row in chunk, new text) changes of consecutive chunks (changes, rows) into
    ``columns``."""
    offset = 0
    for changed, rows in parts:
        for name, changes in changed.items():
            for i, text in changes:
                columns[name][offset + i] = text
        offset += rows


def clean_table(df: pd.DataFrame, cfg: CleanParams) -> CleanResult:
    """Tables in, tables out: kept rows (with ``cluster_id``), quarantined rows with reasons."""
    df = df.reset_index(drop=True).copy()
    with row_pool(len(df)) as pool, gc_paused():
        return _clean_rows(df, cfg, pool)


def _clean_rows(
    df: pd.DataFrame, cfg: CleanParams, pool: ProcessPoolExecutor | None
) -> CleanResult:
    n = len(df)
    modified: Counter[str] = Counter()
    for name in ("tools", "tool_turns"):  # JSON: tool definitions, calls and observations
        if cfg.scrub_pii and name in df:
            scrubbed, found_in = scrub_json_column(df[name].tolist(), cfg.pii_kinds)
            for _, found in found_in:
                modified.update({f"pii_{kind}": count for kind, count in found.items()})
            df[name] = pd.Series(scrubbed, index=df.index, dtype=df[name].dtype)
    columns = {k: df[k].tolist() for k in HISTORY_FIELDS}
    prepared = map_row_chunks(pool, _prepare_rows, columns, cfg)
    _apply_changes(columns, ((part.changed, len(part.lang)) for part in prepared))
    modified["normalised"] = sum(p.normalised for p in prepared)
    for name in TEXT_FIELDS:
        for part in prepared:
            modified.update(part.pii[name])
    langs = _concat(prepared, "lang")
    del prepared
    pending = [i for i, lang in enumerate(langs) if lang is None]
    if pending:
        texts = _full_texts({k: [columns[k][i] for i in pending] for k in HISTORY_FIELDS})
        for i, lang in zip(pending, detector_languages(texts), strict=True):
            langs[i] = lang

    row_ids = df["row_id"].tolist()
    finished = map_row_chunks(
        pool, _finish_rows, {**columns, "lang": langs, "row_id": row_ids}, cfg
    )
    if pool is not None:  # the last per-row work: idle workers would hold their memory on
        pool.shutdown()
    offsets = np.cumsum([0] + [len(part.reason) for part in finished])
    _apply_changes(columns, ((part.simplified, len(part.reason)) for part in finished))
    if cfg.to_simplified:
        modified["to_simplified"] = sum(part.to_simplified for part in finished)
    for name in TEXT_FIELDS:
        df[name] = _strings(columns[name])
    df["history"] = columns["history"]
    df["lang"] = _strings(langs)
    del columns

    reason = pd.Series(_concat(finished, "reason"), dtype="object")
    detail = pd.Series([""] * n, dtype="object")
    lang_rejected = reason == "language"
    detail[lang_rejected] = df.loc[lang_rejected, "lang"].astype(str)

    # Exact duplicates: identical raw content (same row_id) always; identical after
    # normalisation (case, spacing, punctuation, full-width) when exact_dedup is on.
    keys = _concat(finished, "keys")
    alive = reason.isna().to_numpy()
    first = first_occurrence_of(
        [k if ok else f"dead:{i}" for i, (k, ok) in enumerate(zip(keys, alive, strict=True))]
    )
    is_dup = alive & (first != np.arange(n))
    reason[is_dup] = "exact_duplicate"
    detail[is_dup] = df["row_id"].to_numpy()[first[is_dup]]

    cluster_id = df["row_id"].to_numpy().astype(object)
    alive_index = np.flatnonzero(reason.isna().to_numpy())
    if cfg.near_dedup.enabled and alive_index.size > 1:
        nd = cfg.near_dedup
        # The alive rows' signatures in row order, picked chunk by chunk and each chunk's
        # array freed at once: stacking all and then indexing held three copies (~1.5 GB at 1M).
        alive_now = np.zeros(n, dtype=bool)
        alive_now[alive_index] = True
        pieces = [
            (offset + np.asarray(part.signature_rows, dtype=np.int64), part.signatures)
            for part, offset in zip(finished, offsets.tolist(), strict=False)
            if part.signatures is not None
        ]
        del finished
        picked = []
        while pieces:
            rows, chunk_signatures = pieces.pop(0)
            picked.append(chunk_signatures[alive_now[rows]])
            del chunk_signatures
        signatures = np.concatenate(picked)
        del picked
        assert len(signatures) == alive_index.size  # every alive row has its signature
        rep, similarity = near_duplicate_representatives(signatures, nd.threshold)
        rep_rows = alive_index[rep]
        cluster_id[alive_index] = df["row_id"].to_numpy()[rep_rows]
        if nd.drop:
            near = alive_index[rep != np.arange(alive_index.size)]
            reason[near] = "near_duplicate"
            detail[near] = [
                f"{cluster_id[i]} (jaccard≈{s:.2f})"
                for i, s in zip(near, similarity[rep != np.arange(alive_index.size)], strict=True)
            ]
    df["cluster_id"] = _strings(cluster_id)

    kept_mask = reason.isna().to_numpy()
    kept = df[kept_mask].reset_index(drop=True)
    quarantine = df[~kept_mask].copy()
    quarantine["reason"] = reason[~kept_mask].astype(str).to_numpy()
    quarantine["detail"] = detail[~kept_mask].to_numpy()
    return CleanResult(
        kept=kept, quarantine=quarantine.reset_index(drop=True), modified=dict(modified)
    )


def report_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Clean report",
        "",
        f"Rows in: {summary['rows_in']:,}; kept: {summary['rows_kept']:,}; "
        f"quarantined: {summary['rows_quarantined']:,}",
        "",
        "| reason | rows |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in summary["quarantined_by_reason"].items()),
        "",
        "| modification | count |",
        "|---|---:|",
        *(f"| {k} | {v:,} |" for k, v in sorted(summary["modified"].items())),
        "",
        "## Examples of quarantined rows",
    ]
    for reason, rows in summary["examples"].items():
        lines.append(f"\n### {reason}\n")
        lines.extend(
            f"- `{r['row_id']}` {r['instruction'][:80]!r} -> {r['output'][:60]!r} {r['detail']}"
            for r in rows
        )
    return "\n".join(lines) + "\n"


def run_clean(params: Params) -> dict[str, Any]:
    """The edge: read the ingested table, clean it, write kept rows, quarantine and report."""
    paths = params.paths
    result = clean_table(read_table(paths.ingested), params.clean)
    write_table(result.kept, paths.cleaned)
    write_jsonl(
        ({"stage": "clean", **row} for row in result.quarantine.to_dict(orient="records")),
        paths.quarantine("clean"),
    )
    summary = result.summary()
    write_json(summary, paths.report("clean"))
    write_text(report_markdown(summary), paths.report("clean", "md"))
    return summary
