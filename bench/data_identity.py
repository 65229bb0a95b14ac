#!/usr/bin/env python
"""SHA-256 of every data-stage output (ingest, clean, validate, split), in memory, for the
bundled sample and for data_bench's synthetic table: a speed-up must leave them all unchanged.

Usage (from the repository root, after ``source scripts/env.sh``)::

    python bench/data_identity.py --record bench/results/data_identity.json  # before a change
    python bench/data_identity.py --check bench/results/data_identity.json  # after: 1 if any differ
    python bench/data_identity.py --sizes 2000 --check ...   # other synthetic sizes (default 100k)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def frame_hash(frame: pd.DataFrame) -> str:
    """Values and dtypes, and the bytes of the Parquet file the stage would write."""
    from sftops.io import write_table

    digest = hashlib.sha256()
    digest.update(frame.to_json(orient="split", force_ascii=False).encode())
    digest.update(str(list(frame.dtypes.astype(str))).encode())
    with tempfile.TemporaryDirectory() as tmp:
        write_table(frame, Path(tmp) / "table.parquet")
        digest.update((Path(tmp) / "table.parquet").read_bytes())
    return digest.hexdigest()


def json_hash(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


def _placed(value: Any, folder: str | None) -> Any:
    """``value`` with the paths of the checkout and of the temporary folder left out."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    text = text.replace(str(ROOT), "<root>").replace(folder or "<root>", "<tmp>")
    return json.loads(text)


def stage_hashes(sources: list[Any], folder: str | None = None) -> dict[str, str]:
    """``folder``: a temporary folder the sources are in, left out of the hashes."""
    from sftops.config import IngestParams, Params
    from sftops.data.clean import clean_table
    from sftops.data.ingest import ingest_sources
    from sftops.data.split import split_table
    from sftops.data.validate import validate_table

    params = Params()
    ingested = ingest_sources(IngestParams(sources=sources))
    out = {
        "ingest.table": frame_hash(ingested.table),
        "ingest.quarantine": json_hash(_placed(ingested.quarantine, folder)),
        "ingest.summary": json_hash(_placed(ingested.summary(), folder)),
    }
    cleaned = clean_table(ingested.table, params.clean)
    out |= {
        "clean.kept": frame_hash(cleaned.kept),
        "clean.quarantine": frame_hash(cleaned.quarantine),
        "clean.summary": json_hash(cleaned.summary()),
    }
    validated = validate_table(cleaned.kept, params.validate_, params.clean.languages)
    out |= {
        "validate.valid": frame_hash(validated.valid),
        "validate.quarantine": frame_hash(validated.quarantine),
        "validate.summary": json_hash(validated.summary()),
    }
    out["split.table"] = frame_hash(split_table(validated.valid, params.split))
    return out


def all_hashes(sizes: list[int]) -> dict[str, dict[str, str]]:
    from data_bench import generate_rows, write_jsonl

    from sftops.config import Params, SourceParams

    sample = [s.model_copy(update={"path": str(ROOT / s.path)}) for s in Params().ingest.sources]
    result = {"sample": stage_hashes(sample)}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"synthetic_{size}.jsonl"
            write_jsonl(generate_rows(size, 0)[0], path)
            result[f"synthetic_{size}"] = stage_hashes([SourceParams(path=str(path))], tmp)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path)
    group.add_argument("--check", type=Path)
    args = parser.parse_args()
    hashes = all_hashes(args.sizes)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(hashes, indent=2) + "\n", encoding="utf-8")
        print(f"recorded {sum(len(v) for v in hashes.values())} hashes in {args.record}")
        return 0
    recorded = json.loads(args.check.read_text(encoding="utf-8"))
    differ = [
        f"{table}/{name}"
        for table, values in hashes.items()
        for name, value in values.items()
        if recorded.get(table, {}).get(name) != value
    ]
    for name in differ:
        print(f"DIFFERS: {name}")
    print("identical" if not differ else f"{len(differ)} outputs differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
