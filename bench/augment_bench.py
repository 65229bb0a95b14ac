"""Augmentation throughput on 2,000 English train rows, measured side by side in one run.

Prints rows/s for synonym replacement, for back-translation + similarity filter, and how much
faster a rerun with warm caches is than the first run (in this process, and in a fresh process
where WordNet has to be loaded again).

    python bench/augment_bench.py [--rows 2000]

Targets (issue 4): synonym >= 2,000 rows/s; back-translation + filter >= 150 rows/s;
cached rerun >= 20x faster than the first run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data_bench import generate_rows  # noqa: E402
from sftops.augment.augment import augment_table  # noqa: E402
from sftops.augment.wordnet import load_wordnet  # noqa: E402
from sftops.config import AugmentParams, CleanParams, IngestParams, Params  # noqa: E402
from sftops.data.clean import clean_table  # noqa: E402
from sftops.data.ingest import ingest_sources, to_canonical  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    train = english_rows(args.rows)
    n = len(train)
    full = AugmentParams()
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

        source = SynonymSource(load_wordnet(str(cache)))
        rows, _ = eligible_rows(train, full)
        started = time.perf_counter()
        synonym_candidates(train, rows, full, source)
        synonym_seconds = time.perf_counter() - started

        bt_seconds, bt_summary = timed(train, bt_only, Path(tmp) / "bt")
        first_seconds, first_summary = timed(train, full, Path(tmp) / "full")
        rerun_seconds, rerun_summary = timed(train, full, Path(tmp) / "full")
        assert rerun_summary["rows_added"] == first_summary["rows_added"]
        probe = (
            f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
            "from bench.augment_bench import *; "
            f"t = english_rows({args.rows}); s = time.perf_counter(); "
            f"augment_table(t, AugmentParams(), {str(Path(tmp) / 'full')!r}); "
            "print(time.perf_counter() - s)"
        )
        fresh = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        fresh_rerun_seconds = float(fresh.stdout.strip().splitlines()[-1])

    synonym_rate = n / synonym_seconds
    bt_rate = n / bt_seconds
    speedup = first_seconds / rerun_seconds
    fresh_speedup = first_seconds / fresh_rerun_seconds
    results = {
        "rows": n,
        "wordnet_load_seconds": round(wordnet_load, 2),
        "synonym_rows_per_s": round(synonym_rate, 1),
        "backtranslation_filter_rows_per_s": round(bt_rate, 1),
        "first_full_run_seconds": round(first_seconds, 2),
        "cached_rerun_seconds": round(rerun_seconds, 3),
        "cached_rerun_speedup": round(speedup, 1),
        "cached_rerun_fresh_process_seconds": round(fresh_rerun_seconds, 2),
        "cached_rerun_fresh_process_speedup": round(fresh_speedup, 1),
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
        f"  cached rerun (same process)  {rerun_seconds:10.3f} s  = {speedup:.0f}x faster   "
        f"target >= 20x  {'PASS' if speedup >= 20 else 'FAIL'}"
    )
    print(
        f"  cached rerun (new process)   {fresh_rerun_seconds:10.2f} s  = {fresh_speedup:.1f}x "
        "faster (new process: models and caches loaded from disk)"
    )
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "augment_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
