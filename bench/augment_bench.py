"""Augmentation throughput on 2,000 English train rows, measured side by side in one run.

Prints rows/s for synonym replacement, for back-translation + similarity filter, and how much
faster a rerun with warm caches is than the first run. The cached-rerun verdict compares two
fresh processes, as `dvc repro` runs the stage: the first on an empty cache folder, the rerun
on the cache the first one left (models and caches loaded from disk in both); the warm rerun in
this process is printed for information only. Exits 1 when a target is missed.

    python bench/augment_bench.py [--rows 2000]
    python bench/augment_bench.py --labels [tests/assets/augment_labels.csv]

Targets (issue 4): synonym >= 2,000 rows/s; back-translation + filter >= 150 rows/s;
cached rerun >= 20x faster than the first run.

``--labels``: the quality filter (``augment.judge`` with params.yaml's ``augment.filter``) on
the hand-labelled candidates: precision and recall of "accept" against the labels, overall,
per method and language, on the tuning part and on the held-out part (split by hash of the
candidate, 50/50; thresholds were chosen on the tuning part only), side by side with the
previous filter (embedding cosine >= 0.85 and the protected-token / length checks alone) and
the same filter without its fluency check (``augment.filter.fluency_model: null``).
Target (issue 13): precision >= 0.95 on the held-out part, for English and for Chinese
synonym replacement; for Chinese the precision/recall curve over the fluency threshold is
printed on the tuning part (the held-out part is read at the chosen threshold only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data_bench import generate_rows  # noqa: E402
from sftops.augment.augment import augment_table  # noqa: E402
from sftops.augment.wordnet import load_wordnet  # noqa: E402
from sftops.config import (  # noqa: E402
    AugmentParams,
    CleanParams,
    IngestParams,
    Params,
    cache_location,
)
from sftops.data.canonical import to_canonical  # noqa: E402
from sftops.data.clean import clean_table  # noqa: E402
from sftops.data.ingest import ingest_sources  # noqa: E402


def english_rows(n: int) -> pd.DataFrame:
    """The bundled sample's English rows, topped up with synthetic English rows."""
    default = Params().ingest
    sources = [s.model_copy(update={"path": str(ROOT / s.path)}) for s in default.sources]
    sample = ingest_sources(IngestParams(sources=sources)).table
    rows, _ = generate_rows(3 * n, seed=7)
    extra = pd.DataFrame([to_canonical(r, "synthetic", {}, 10**6) for r in rows]).astype("string")
    table = clean_table(pd.concat([sample, extra], ignore_index=True), CleanParams()).kept
    english = table[table["lang"] == "en"]
    if len(english) < n:
        raise SystemExit(f"only {len(english)} English rows available")
    return english.head(n).reset_index(drop=True)


def timed(train: pd.DataFrame, cfg: AugmentParams, cache: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    result = augment_table(train, cfg, cache)
    return time.perf_counter() - started, result.summary()


LABELS = ROOT / "tests" / "assets" / "augment_labels.csv"
PRECISION_TARGET = 0.95


def held_out(candidate: str) -> bool:
    """Half of the labelled set, by hash, never looked at when choosing thresholds."""
    return int(hashlib.md5(candidate.encode()).hexdigest(), 16) % 2 == 1


def precision_recall(accepted: list[bool], labels: list[bool]) -> dict[str, float | int]:
    tp = sum(a and g for a, g in zip(accepted, labels, strict=True))
    fp = sum(a and not g for a, g in zip(accepted, labels, strict=True))
    fn = sum(g and not a for a, g in zip(accepted, labels, strict=True))
    return {
        "n": len(labels),
        "good": sum(labels),
        "accepted": tp + fp,
        "precision": round(tp / (tp + fp), 4) if tp + fp else float("nan"),
        "recall": round(tp / (tp + fn), 4) if tp + fn else float("nan"),
    }


def precision_lower_bound(counts: dict[str, float | int]) -> float:
    """One-sided 95% Clopper-Pearson lower bound of a precision (few accepted = wide).

    >>> round(precision_lower_bound({"accepted": 4, "precision": 1.0}), 3)
    0.473
    """
    from scipy.stats import beta

    n = int(counts["accepted"])
    k = round(float(counts["precision"]) * n) if n else 0
    return float(beta.ppf(0.05, k, n - k + 1)) if k else 0.0


def previous_filter(originals: list[str], candidates: list[str], cfg: Any) -> list[bool]:
    """The filter before issue 13: unchanged / protected token / length, then cosine >= 0.85."""
    from sftops.augment.similarity import Embedder, cosine_rows, protected_tokens, same_text

    embedder = Embedder(precision="fp32")
    cosine = cosine_rows(embedder(originals), embedder(candidates))
    out = []
    for a, b, cos in zip(originals, candidates, cosine, strict=True):
        ratio = len(b) / max(1, len(a))
        out.append(
            not same_text(a, b)
            and sorted(protected_tokens(a)) == sorted(protected_tokens(b))
            and cfg.min_length_ratio <= ratio <= cfg.max_length_ratio
            and float(cos) >= 0.85
        )
    return out


ZH_THRESHOLDS = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 8.0, float("inf"))


def chinese_curve(table: pd.DataFrame, chosen: float) -> dict[str, dict[str, object]]:
    """Precision / recall of Chinese synonym candidates as ``augment.filter.max_nll_increase_zh``
    varies (the other checks as configured): the threshold is the largest whose precision on
    the tuning half reaches the target; the held-out half is read off at that one only."""
    zh = table[(table["lang"] == "zh") & (table["method"] == "synonym")]
    # Rejected for fluency alone (or accepted): the threshold decides; anything else stays out.
    scored = zh["reason"].isin(["", "less_fluent"])
    curve: dict[str, dict[str, object]] = {}
    print("Chinese synonym candidates vs max_nll_increase_zh (worst single replacement, nats):")
    print(
        f"{'threshold':>10s} | {'tune: acc':>9s} {'prec':>6s} {'recall':>6s} "
        f"| {'held_out: acc':>13s} {'prec':>6s} {'recall':>6s}"
    )
    for limit in ZH_THRESHOLDS:
        accepted = scored & (zh["nll_increase"].fillna(np.inf) <= limit)
        row = {}
        for part in ("tune", "held_out"):
            mask = zh["part"] == part
            row[part] = precision_recall(accepted[mask].tolist(), zh["good"][mask].tolist())
        curve[str(limit)] = row
        tune, held = row["tune"], row["held_out"]
        mark = "  <- params.yaml" if limit == chosen else ""
        print(
            f"{limit:10.1f} | {tune['accepted']:9d} {tune['precision']:6.3f} "
            f"{tune['recall']:6.3f} | {held['accepted']:13d} {held['precision']:6.3f} "
            f"{held['recall']:6.3f}{mark}"
        )
    return curve


def label_bench(path: Path) -> int:
    from sftops.augment.augment import judge
    from sftops.config import load_params

    table = pd.read_csv(path, keep_default_na=False)
    cfg = load_params(ROOT / "params.yaml").augment
    args = (table["original"].tolist(), table["candidate"].tolist())
    extra = (table["method"].tolist(), table["lang"].tolist())
    started = time.perf_counter()
    # Cached like the pipeline's stage (a rerun after a threshold change takes seconds).
    cache = ROOT / cache_location(".cache/sftops") / "bench"  # $SFTOPS_CACHE_DIR when set
    reasons, similarity, nll = judge(*args, *extra, cfg, cache)
    seconds = time.perf_counter() - started
    table["ours"] = [r is None for r in reasons]
    # The operating point the ablation found useful at 24 rows (bench/results/augment_ablation.md)
    lenient = cfg.model_copy(
        update={"filter": cfg.filter.model_copy(update={"fluency_model": None})}
    )
    table["no_fluency"] = [r is None for r in judge(*args, *extra, lenient, cache)[0]]
    table["previous"] = previous_filter(*args, cfg.filter)
    table["reason"] = [r or "" for r in reasons]
    table["similarity"], table["nll_increase"] = similarity, nll
    table["good"] = table["label"] == "accept"
    table["part"] = ["held_out" if held_out(c) else "tune" for c in table["candidate"]]
    results: dict[str, object] = {"labelled": len(table), "filter_seconds": round(seconds, 2)}
    print(
        f"quality filter on {len(table)} hand-labelled candidates ({path.name}); "
        f"2 shared CPU cores; filter {seconds:.1f} s"
    )
    print(
        f"{'slice':34s} {'n':>4s} {'good':>4s} | {'ours: acc':>9s} {'prec':>6s} {'recall':>6s} "
        f"| {'no fluency: acc':>15s} {'prec':>6s} {'recall':>6s} "
        f"| {'previous: acc':>13s} {'prec':>6s} {'recall':>6s}"
    )
    english = table[table["lang"] == "en"]  # the default augment.languages
    slices = [
        ("all", table),
        *[(p, table[table["part"] == p]) for p in ("tune", "held_out")],
        ("english (default languages)", english),
        ("english held_out", english[english["part"] == "held_out"]),
    ]
    for (method, lang), group in table.groupby(["method", "lang"]):
        slices.append((f"{method}/{lang}", group))
        slices.append((f"{method}/{lang} held_out", group[group["part"] == "held_out"]))
    for name, group in slices:
        ours = precision_recall(group["ours"].tolist(), group["good"].tolist())
        lax = precision_recall(group["no_fluency"].tolist(), group["good"].tolist())
        old = precision_recall(group["previous"].tolist(), group["good"].tolist())
        results[name] = {"ours": ours, "no_fluency": lax, "previous": old}
        print(
            f"{name:34s} {ours['n']:4d} {ours['good']:4d} | {ours['accepted']:9d} "
            f"{ours['precision']:6.3f} {ours['recall']:6.3f} | {lax['accepted']:15d} "
            f"{lax['precision']:6.3f} {lax['recall']:6.3f} | {old['accepted']:13d} "
            f"{old['precision']:6.3f} {old['recall']:6.3f}"
        )
    rates = table.groupby(["method", "lang"])["ours"].mean().round(4)
    results["accepted_rate"] = {f"{m}/{lg}": float(v) for (m, lg), v in rates.items()}
    print("accepted rate per method/language:", results["accepted_rate"])
    print("rejections by reason:", table["reason"].value_counts().to_dict())
    results["zh_curve"] = chinese_curve(table, cfg.filter.max_nll_increase_zh)
    verdicts = []
    for name, label in (("english held_out", "English"), ("synonym/zh held_out", "Chinese")):
        held = results[name]["ours"]  # type: ignore[index]
        ok = held["precision"] >= PRECISION_TARGET
        verdicts.append(ok)
        print(
            f"{label} held-out precision {held['precision']:.3f} (recall {held['recall']:.3f}; "
            f"{held['accepted']} accepted, 95% lower bound {precision_lower_bound(held):.2f}): "
            f"target >= {PRECISION_TARGET}  {'PASS' if ok else 'FAIL'}"
        )
    ok = all(verdicts)
    out = ROOT / "bench" / "results" / "augment_filter.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0 if ok else 1


def fresh_process_seconds(rows: int, cache: Path) -> float:
    """Seconds of ``augment_table`` on :func:`english_rows` in a new interpreter (the rows are
    prepared before the clock starts; loading models and caches from disk is timed)."""
    probe = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
        "from bench.augment_bench import *; "
        f"t = english_rows({rows}); s = time.perf_counter(); "
        f"augment_table(t, AugmentParams(enabled=True), {str(cache)!r}); "
        "print(time.perf_counter() - s)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def verdicts(synonym_rate: float, bt_rate: float, fresh_speedup: float) -> dict[str, bool]:
    """The targets of issue 4; the cached rerun is judged on fresh processes.

    >>> all(verdicts(2500, 200, 25.0).values())
    True
    >>> [name for name, ok in verdicts(2500, 200, 3.0).items() if not ok]
    ['cached rerun (new process) >= 20x']
    """
    return {
        "synonym >= 2000 rows/s": synonym_rate >= 2000,
        "back-translation + filter >= 150 rows/s": bt_rate >= 150,
        "cached rerun (new process) >= 20x": fresh_speedup >= 20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--labels", nargs="?", type=Path, const=LABELS, default=None)
    args = parser.parse_args()
    if args.labels:
        return label_bench(args.labels)
    train = english_rows(args.rows)
    n = len(train)
    full = AugmentParams(enabled=True)
    bt_only = full.model_copy(
        update={"synonym": full.synonym.model_copy(update={"enabled": False})}
    )

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        started = time.perf_counter()
        load_wordnet(str(cache))
        wordnet_load = time.perf_counter() - started
        # Synonym candidates alone (WordNet already loaded; the filter is timed with BT below).
        from sftops.augment.augment import eligible_rows, synonym_candidates
        from sftops.augment.synonym import SynonymSource
        from sftops.augment.tagger import TagCache

        source = SynonymSource(load_wordnet(str(cache)))
        rows, _ = eligible_rows(train, full)
        started = time.perf_counter()  # tagging included (no tag cache: a first run)
        synonym_candidates(train, rows, full, source, TagCache(None))
        synonym_seconds = time.perf_counter() - started

        bt_seconds, bt_summary = timed(train, bt_only, Path(tmp) / "bt")
        first_seconds, first_summary = timed(train, full, Path(tmp) / "full")
        rerun_seconds, rerun_summary = timed(train, full, Path(tmp) / "full")
        assert rerun_summary["rows_added"] == first_summary["rows_added"]
        # What `dvc repro augment` does: a new process, first on no cache, then on its cache.
        fresh_first_seconds = fresh_process_seconds(args.rows, Path(tmp) / "fresh")
        fresh_rerun_seconds = fresh_process_seconds(args.rows, Path(tmp) / "fresh")

    synonym_rate = n / synonym_seconds
    bt_rate = n / bt_seconds
    speedup = first_seconds / rerun_seconds
    fresh_speedup = fresh_first_seconds / fresh_rerun_seconds
    checks = verdicts(synonym_rate, bt_rate, fresh_speedup)
    results = {
        "rows": n,
        "wordnet_load_seconds": round(wordnet_load, 2),
        "synonym_rows_per_s": round(synonym_rate, 1),
        "backtranslation_filter_rows_per_s": round(bt_rate, 1),
        "first_full_run_seconds": round(first_seconds, 2),
        "cached_rerun_seconds": round(rerun_seconds, 3),
        "cached_rerun_speedup": round(speedup, 1),
        "first_run_fresh_process_seconds": round(fresh_first_seconds, 2),
        "cached_rerun_fresh_process_seconds": round(fresh_rerun_seconds, 2),
        "cached_rerun_fresh_process_speedup": round(fresh_speedup, 1),
        "checks": checks,
        "accepted": {m: v["accepted"] for m, v in first_summary["methods"].items()},
        "acceptance_rate": {m: v["acceptance_rate"] for m, v in first_summary["methods"].items()},
        "bt_only_accepted": {m: v["accepted"] for m, v in bt_summary["methods"].items()},
    }
    print(f"augment bench on {n} English rows (2 CPU cores)")
    print(
        f"  synonym replacement          {synonym_rate:10.0f} rows/s   target >= 2000  "
        f"{'PASS' if synonym_rate >= 2000 else 'FAIL'}  (WordNet load {wordnet_load:.1f} s, once)"
    )
    print(
        f"  back-translation + filter    {bt_rate:10.0f} rows/s   target >= 150   "
        f"{'PASS' if bt_rate >= 150 else 'FAIL'}"
    )
    print(f"  first full run               {first_seconds:10.2f} s")
    print(
        f"  cached rerun (same process)  {rerun_seconds:10.3f} s  = {speedup:.0f}x faster "
        "(warm models in memory: information only)"
    )
    print(
        f"  first run (new process)      {fresh_first_seconds:10.2f} s\n"
        f"  cached rerun (new process)   {fresh_rerun_seconds:10.2f} s  = {fresh_speedup:.1f}x "
        f"faster   target >= 20x  {'PASS' if fresh_speedup >= 20 else 'FAIL'}  (as `dvc repro`)"
    )
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "augment_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    missed = [name for name, ok in checks.items() if not ok]
    print(f"targets missed: {', '.join(missed)}" if missed else "all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
