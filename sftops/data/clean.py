"""Clean: normalise text, strip markup, scrub PII, filter, and remove exact / near duplicates.

Every input row ends up either in the kept table or in the quarantine with a reason, and the
report counts both (rows in = rows kept + rows quarantined).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
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
from sftops.data.pii import scrub_column, scrub_json_column, scrub_many
from sftops.io import read_table, write_json, write_jsonl, write_table, write_text
from sftops.parallel import map_row_chunks, row_pool
from sftops.rowkeys import dedup_key, join_text
from sftops.text import ascii_alnum_core, ascii_words, has_cjk, shingles, word_shingles

TEXT_FIELDS = ("system", "instruction", "input", "output")
CODE_FENCE_RE = re.compile(r"(```.*?(?:```|$))", re.DOTALL)
# Only real HTML tag names, so `List<String>` or `a <b> c` in prose about code survive.
_TAGS = (
    "a|abbr|b|blockquote|body|br|code|dd|del|div|dl|dt|em|font|h[1-6]|head|hr|html|i|img|ins|"
    "kbd|li|mark|meta|ol|p|pre|s|small|span|strong|sub|sup|table|tbody|td|tfoot|th|thead|title|"
    "tr|tt|u|ul"
)
# Attributes must have values (`<b and c>` in prose is not a tag).
_ATTRS = r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>]+))*"""
HTML_TAG_RE = re.compile(rf"</?(?:{_TAGS}){_ATTRS}\s*/?>", re.IGNORECASE)
HTML_BLOCK_TAG_RE = re.compile(r"<(?:br|/p|/div|/li|/tr|/h[1-6]|hr)\b[^<>]*>", re.IGNORECASE)
HTML_DROP_RE = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
HTML_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[A-Za-z]{2,8});")
# Control and format characters (category Cc/Cf) except tab and newline.
CONTROL_RE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]"
)
# Runs of inline spaces, except a lone " " (already what a run becomes).
INLINE_SPACE_RE = re.compile(r" [ \t\u00a0\u3000]+|[\t\u00a0\u3000][ \t\u00a0\u3000]*")
MANY_NEWLINES_RE = re.compile(r"\n{3,}")
WORD_OR_CJK_RE = re.compile(r"[\u3400-\u9fff]|\w+")
SPACE_RE = re.compile(r"\s+")
NOT_ALNUM_RE = re.compile(r"[\W_]+")  # [^\W_] is exactly str.isalnum, \s str.isspace


def _outside_code(text: str, edit: Any) -> str:
    """Apply ``edit`` to the parts of ``text`` that are not inside ``` code fences."""
    if "```" not in text:
        return str(edit(text))
    parts = CODE_FENCE_RE.split(text)
    return "".join(part if part.startswith("```") else edit(part) for part in parts)


def strip_html(text: str) -> str:
    """Remove HTML tags and decode entities outside code blocks.

    >>> strip_html("<p>Hello&nbsp;<b>world</b></p>")
    'Hello\\xa0world\\n'
    >>> strip_html("Use List<String> when a < b")
    'Use List<String> when a < b'
    >>> strip_html("```html\\n<p>x</p>\\n```")
    '```html\\n<p>x</p>\\n```'
    """

    def edit(part: str) -> str:
        if "<" in part:
            part = HTML_DROP_RE.sub("", part)
            part = HTML_BLOCK_TAG_RE.sub("\n", part)
            part = HTML_TAG_RE.sub("", part)
        if "&" in part and HTML_ENTITY_RE.search(part):
            part = html.unescape(part)
        return part

    return _outside_code(text, edit)


def _tidy_whitespace(part: str) -> str:
    part = INLINE_SPACE_RE.sub(" ", part)
    if "\n" not in part:
        return part.strip()
    part = "\n".join(line.strip() for line in part.split("\n"))
    return MANY_NEWLINES_RE.sub("\n\n", part) if "\n\n\n" in part else part


# Full-width punctuation is the correct form in Chinese text; NFKC would turn it into ASCII.
CJK_PUNCTUATION = "，！？：；（）"
_NOT_CJK_PUNCTUATION_RE = re.compile(f"[^{CJK_PUNCTUATION}]+")


def nfkc(text: str) -> str:
    """NFKC, except that Chinese text keeps its full-width punctuation.

    >>> nfkc("ＡＢＣ１２３，ｘ"), nfkc("你好，ＡＢＣ！")
    ('ABC123,x', '你好，ABC！')
    """
    if not has_cjk(text):
        return unicodedata.normalize("NFKC", text)
    return _NOT_CJK_PUNCTUATION_RE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def normalise_text(text: str, unicode_nfkc: bool = True, html_strip: bool = True) -> str:
    """NFKC (full-width -> half-width), drop control / zero-width characters, strip HTML, tidy
    whitespace outside code blocks.

    >>> normalise_text("ＡＢＣ１２３\\u200b  <b>ok</b>\\x07\\r\\n")
    'ABC123 ok'
    >>> normalise_text("```py\\n    x = 1\\n```")
    '```py\\n    x = 1\\n```'
    """
    if not text.isascii() and unicode_nfkc:
        text = nfkc(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_RE.sub("", text)
    if html_strip:
        text = strip_html(text)
    return _outside_code(text, _tidy_whitespace).strip()


# A text showing none of these (RE2 syntax) can only change by ``strip()`` in normalise_text:
# not NFKC-able (printable ASCII), no control character, newline or tab, no markup or entity
# character, no code fence, no run of spaces.
_NEEDS_NORMALISING_RE2 = r"[^\x20-\x7e]|[<&`]|  "


def normalise_texts(
    texts: Sequence[str], unicode_nfkc: bool = True, html_strip: bool = True
) -> list[str]:
    """``normalise_text`` of each text; one vectorised regex pass picks the texts that need the
    per-text work, the others are only stripped.

    >>> normalise_texts([" plain text ", "<b>bold</b>  x"])
    ['plain text', 'bold x']
    """
    if not texts:
        return []
    needs = pc.match_substring_regex(pa.array(texts, pa.string()), _NEEDS_NORMALISING_RE2)
    return [
        normalise_text(t, unicode_nfkc, html_strip) if hard else t.strip()
        for t, hard in zip(texts, needs.to_numpy(zero_copy_only=False).tolist(), strict=True)
    ]


_ASCII_ALNUM_BYTES = bytes(c for c in range(128) if chr(c).isalnum())
_NOT_ASCII_ALNUM_BYTES = bytes(c for c in range(256) if bytes([c]) not in _ASCII_ALNUM_BYTES)
_ASCII_SPACE_BYTES = b" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"  # what \s matches in ASCII text


def alnum_ratios(texts: Sequence[str]) -> np.ndarray:
    """``alnum_ratio`` of each text; ASCII texts are counted with ``bytes.translate``.

    >>> alnum_ratios(["ab!!", "你好！", "", " \t"]).tolist()
    [0.5, 0.6666666666666666, 1.0, 1.0]
    """
    out = np.empty(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        if not text.isascii():
            out[i] = alnum_ratio(text)
            continue
        raw = text.encode("ascii")
        chars = len(raw.translate(None, _ASCII_SPACE_BYTES))
        out[i] = len(raw.translate(None, _NOT_ASCII_ALNUM_BYTES)) / chars if chars else 1.0
    return out


def repetition_ratio(text: str, n: int = 3) -> float:
    """Fraction of word (or CJK character) n-grams that repeat an earlier one.

    >>> repetition_ratio("the the the the the the the the")
    0.8333333333333334
    >>> repetition_ratio("a quick brown fox jumps over the lazy dog")
    0.0
    """
    return _repetition(WORD_OR_CJK_RE.findall(text.lower()), n)


def _repetition(tokens: list[str], n: int = 3) -> float:
    if len(tokens) < n + 3:  # too short to call repetitive
        return 0.0
    grams = list(zip(*(tokens[i:] for i in range(n)), strict=False))
    return 1 - len(set(grams)) / len(grams)


def _key_of_core(core: bytes) -> str:
    """``rowkeys.dedup_key`` of a text already reduced to its lower-cased letters and digits.

    >>> from sftops.text import ascii_alnum_core
    >>> _key_of_core(ascii_alnum_core("Hello, World_2!")) == dedup_key("Hello, World_2!")
    True
    """
    return hashlib.blake2b(core, digest_size=8).hexdigest()


def _may_repeat(n_tokens: int, n_distinct_bigrams: int, limit: float) -> bool:
    """False when the trigram repetition of a text cannot exceed ``limit``: a trigram that
    repeats an earlier one starts with a bigram that does, so the repeated trigrams are at most
    the repeated bigrams (the margin keeps float rounding on the safe side).

    >>> _may_repeat(10, 9, 0.5), _may_repeat(10, 3, 0.5)
    (False, True)
    """
    if n_tokens < 6:  # _repetition calls a text this short not repetitive
        return False
    repeated_bigrams = (n_tokens - 1) - n_distinct_bigrams
    return repeated_bigrams >= (limit - 1e-9) * (n_tokens - 2)


def alnum_ratio(text: str) -> float:
    """Fraction of non-space characters that are letters or digits (CJK included).

    >>> alnum_ratio("ab!!"), alnum_ratio("你好！"), alnum_ratio("")
    (0.5, 0.6666666666666666, 1.0)
    """
    chars = SPACE_RE.sub("", text)
    if not chars:
        return 1.0
    return len(NOT_ALNUM_RE.sub("", chars)) / len(chars)


@cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese (OpenCC).

    >>> to_simplified("這是一個測試")
    '这是一个测试'
    """
    return str(_t2s().convert(text))


def _map_history(history: str, edit: Any) -> str:
    if history == "[]":
        return history
    pairs = json.loads(history)
    return json.dumps([[edit(u), edit(a)] for u, a in pairs], ensure_ascii=False)


def _full_texts(columns: dict[str, list[str]]) -> list[str]:
    return [
        join_text(*row)
        for row in zip(
            columns["system"],
            columns["history"],
            columns["instruction"],
            columns["input"],
            columns["output"],
            strict=True,
        )
    ]


@dataclass
class CleanResult:
    kept: pd.DataFrame
    quarantine: pd.DataFrame  # the rows plus `reason` and `detail`
    modified: dict[str, int]

    def fingerprint(self) -> str:
        """Hash of the kept and quarantined rows (values and dtypes) and the counts: equal
        fingerprints mean identical clean outputs (used to check that speed-ups change
        nothing)."""
        import hashlib

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

    columns: dict[str, list[str]]  # HISTORY_FIELDS
    lang: list[str | None]  # None: for the language detector
    normalised: int
    pii: dict[str, Counter[str]]  # per field, kinds in order of first occurrence


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
    return _Prepared(out, fast_languages(_full_texts(out)), normalised, pii)


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


def _concat(parts: Sequence[Any], attr: str, name: str | None = None) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        out.extend(getattr(part, attr) if name is None else getattr(part, attr)[name])
    return out


def clean_table(df: pd.DataFrame, cfg: CleanParams) -> CleanResult:
    """Tables in, tables out: kept rows (with ``cluster_id``), quarantined rows with reasons."""
    df = df.reset_index(drop=True).copy()
    with row_pool(len(df)) as pool:
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
    prepared = map_row_chunks(pool, _prepare_rows, {k: df[k].tolist() for k in HISTORY_FIELDS}, cfg)
    columns = {name: _concat(prepared, "columns", name) for name in HISTORY_FIELDS}
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
    offsets = np.cumsum([0] + [len(part.reason) for part in finished])
    for part, offset in zip(finished, offsets.tolist(), strict=False):
        for name, changes in part.simplified.items():
            for i, text in changes:
                columns[name][offset + i] = text
    if cfg.to_simplified:
        modified["to_simplified"] = sum(part.to_simplified for part in finished)
    for name in TEXT_FIELDS:
        df[name] = pd.array(columns[name], dtype="string")
    df["history"] = columns["history"]
    df["lang"] = pd.array(langs, dtype="string")
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
        # Row of each row's signature in the stacked chunk signatures (-1: none computed).
        position = np.full(n, -1, dtype=np.int64)
        rows_with = [
            offset + np.asarray(part.signature_rows, dtype=np.int64)
            for part, offset in zip(finished, offsets.tolist(), strict=False)
        ]
        position[np.concatenate(rows_with)] = np.arange(sum(r.size for r in rows_with))
        stacked = [part.signatures for part in finished if part.signatures is not None]
        del finished
        assert (position[alive_index] >= 0).all()
        signatures = np.concatenate(stacked)[position[alive_index]]
        del stacked
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
    df["cluster_id"] = pd.array(cluster_id, dtype="string")

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
