"""Clean: normalise text, strip markup, scrub PII, filter, and remove exact / near duplicates.

Every input row ends up either in the kept table or in the quarantine with a reason, and the
report counts both (rows in = rows kept + rows quarantined).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from sftops.config import CleanParams, Params
from sftops.data.dedup import (
    dedup_key,
    first_occurrence_of,
    minhash_signatures,
    near_duplicate_representatives,
)
from sftops.data.langid import detect_languages
from sftops.data.pii import scrub_many
from sftops.io import read_table, write_json, write_jsonl, write_table, write_text
from sftops.text import has_cjk

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
INLINE_SPACE_RE = re.compile(r"[ \t\u00a0\u3000]+")
MANY_NEWLINES_RE = re.compile(r"\n{3,}")
WORD_OR_CJK_RE = re.compile(r"[\u3400-\u9fff]|\w+")


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
    part = "\n".join(line.strip() for line in part.split("\n"))
    return MANY_NEWLINES_RE.sub("\n\n", part)


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


def repetition_ratio(text: str, n: int = 3) -> float:
    """Fraction of word (or CJK character) n-grams that repeat an earlier one.

    >>> repetition_ratio("the the the the the the the the")
    0.8333333333333334
    >>> repetition_ratio("a quick brown fox jumps over the lazy dog")
    0.0
    """
    tokens = WORD_OR_CJK_RE.findall(text.lower())
    if len(tokens) < n + 3:  # too short to call repetitive
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


def alnum_ratio(text: str) -> float:
    """Fraction of non-space characters that are letters or digits (CJK included).

    >>> alnum_ratio("ab!!"), alnum_ratio("你好！"), alnum_ratio("")
    (0.5, 0.6666666666666666, 1.0)
    """
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 1.0
    return sum(c.isalnum() for c in chars) / len(chars)


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


def _history_texts(history: str) -> list[str]:
    return [turn for pair in json.loads(history) for turn in pair]


def _map_history(history: str, edit: Any) -> str:
    if history == "[]":
        return history
    pairs = json.loads(history)
    return json.dumps([[edit(u), edit(a)] for u, a in pairs], ensure_ascii=False)


def full_text(row: dict[str, Any] | pd.Series) -> str:
    """All the text of a row (system, earlier turns, instruction, input, output)."""
    turns = " ".join(_history_texts(row["history"])) if row["history"] != "[]" else ""
    return " ".join(
        part
        for part in (row["system"], turns, row["instruction"], row["input"], row["output"])
        if part
    )


@dataclass
class CleanResult:
    kept: pd.DataFrame
    quarantine: pd.DataFrame  # the rows plus `reason` and `detail`
    modified: dict[str, int]

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


def _normalise_fields(df: pd.DataFrame, cfg: CleanParams, modified: Counter[str]) -> pd.DataFrame:
    df = df.copy()
    for name in TEXT_FIELDS:
        before = df[name].tolist()
        after = [normalise_text(t, cfg.normalize_unicode, cfg.strip_html) for t in before]
        modified["normalised"] += sum(a != b for a, b in zip(after, before, strict=True))
        df[name] = pd.array(after, dtype="string")
    edit = lambda t: normalise_text(t, cfg.normalize_unicode, cfg.strip_html)  # noqa: E731
    df["history"] = [_map_history(h, edit) for h in df["history"].tolist()]
    if cfg.scrub_pii:
        for name in TEXT_FIELDS:
            scrubbed, counts = scrub_many(df[name].tolist(), cfg.pii_kinds)
            for found in counts:
                for kind, n in found.items():
                    modified[f"pii_{kind}"] += n
            df[name] = pd.array(scrubbed, dtype="string")
        df["history"] = [
            _map_history(h, lambda t: scrub_many([t], cfg.pii_kinds)[0][0])
            for h in df["history"].tolist()
        ]
    return df


def _filter_reasons(df: pd.DataFrame, texts: list[str], cfg: CleanParams) -> list[str | None]:
    """The first failing filter per row (None when the row passes)."""
    reasons: list[str | None] = []
    allowed = set(cfg.languages) | {"und"}
    for row, text, lang in zip(
        df[["instruction", "output"]].itertuples(index=False), texts, df["lang"], strict=True
    ):
        instruction, output = row
        if len(instruction.strip()) < cfg.min_instruction_chars:
            reasons.append("empty_instruction")
        elif len(output.strip()) < cfg.min_output_chars:
            reasons.append("empty_output")
        elif len(text) > cfg.max_chars:
            reasons.append("too_long")
        elif repetition_ratio(text) > cfg.max_repetition:
            reasons.append("repetitive")
        elif min(alnum_ratio(instruction), alnum_ratio(output)) < cfg.min_alnum_ratio:
            reasons.append("low_alnum_ratio")
        elif lang not in allowed:
            reasons.append("language")
        else:
            reasons.append(None)
    return reasons


def clean_table(df: pd.DataFrame, cfg: CleanParams) -> CleanResult:
    """Tables in, tables out: kept rows (with ``cluster_id``), quarantined rows with reasons."""
    modified: Counter[str] = Counter()
    df = _normalise_fields(df.reset_index(drop=True), cfg, modified)
    texts = [full_text(row) for row in df.to_dict(orient="records")]
    df["lang"] = pd.array(detect_languages(texts), dtype="string")
    if cfg.to_simplified:
        zh = np.flatnonzero(df["lang"].to_numpy() == "zh")
        for name in TEXT_FIELDS:
            column = df[name].tolist()
            converted = [to_simplified(column[i]) for i in zh]
            changed = [i for i, c in zip(zh, converted, strict=True) if c != column[i]]
            for i, c in zip(zh, converted, strict=True):
                column[i] = c
            modified["to_simplified"] += len(changed)
            df[name] = pd.array(column, dtype="string")
        if len(zh):
            texts = [full_text(row) for row in df.to_dict(orient="records")]

    reason = pd.Series(_filter_reasons(df, texts, cfg), dtype="object")
    detail = pd.Series([""] * len(df), dtype="object")
    lang_rejected = reason == "language"
    detail[lang_rejected] = df.loc[lang_rejected, "lang"].astype(str)

    # Exact duplicates: identical raw content (same row_id) always; identical after
    # normalisation (case, spacing, punctuation, full-width) when exact_dedup is on.
    keys = df["row_id"].tolist()
    if cfg.exact_dedup:
        keys = [dedup_key(t) for t in texts]
    alive = reason.isna().to_numpy()
    first = first_occurrence_of(
        [k if ok else f"dead:{i}" for i, (k, ok) in enumerate(zip(keys, alive, strict=True))]
    )
    is_dup = alive & (first != np.arange(len(df)))
    reason[is_dup] = "exact_duplicate"
    detail[is_dup] = df["row_id"].to_numpy()[first[is_dup]]

    cluster_id = df["row_id"].to_numpy().astype(object)
    alive_index = np.flatnonzero(reason.isna().to_numpy())
    if cfg.near_dedup.enabled and alive_index.size > 1:
        nd = cfg.near_dedup
        signatures = minhash_signatures(
            [texts[i] for i in alive_index], nd.num_perm, nd.word_ngram, nd.char_ngram
        )
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
