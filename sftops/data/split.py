"""Split: train / validation / test by a hash of the near-duplicate cluster id.

Assignment depends only on the cluster id and the salt, never on row order or RNG state, and
every member of a near-duplicate cluster lands in the same split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sftops.config import Params, SplitParams
from sftops.io import read_table, write_json, write_table
from sftops.rowkeys import hash_fraction
from sftops.schemas import SPLITS, SplitRows


def assign_split(cluster_id: str, cfg: SplitParams) -> str:
    """The split of one cluster.

    >>> from sftops.config import SplitParams
    >>> assign_split("0123456789abcdef", SplitParams()) in {"train", "validation", "test"}
    True
    """
    u = hash_fraction(cluster_id, cfg.salt)
    if u < cfg.test:
        return "test"
    if u < cfg.test + cfg.validation:
        return "validation"
    return "train"


def assign_splits(cluster_ids: Sequence[str], cfg: SplitParams) -> np.ndarray:
    """``assign_split`` of each cluster id: the digests are hashed one by one, but turned into
    fractions and compared column-wise (uint64 / 2**64 rounds as Python's int division does).

    >>> from sftops.config import SplitParams
    >>> ids = ["0123456789abcdef", "x", "y"]
    >>> assign_splits(ids, SplitParams()).tolist() == [assign_split(c, SplitParams()) for c in ids]
    True
    """
    blake2b = hashlib.blake2b
    digests = b"".join(
        blake2b(f"{cfg.salt}:{c}".encode(), digest_size=8).digest() for c in cluster_ids
    )
    u = np.frombuffer(digests, dtype=">u8").astype(np.float64) / 2.0**64
    labels = np.array(["test", "validation", "train"], dtype=object)
    return labels[np.where(u < cfg.test, 0, np.where(u < cfg.test + cfg.validation, 1, 2))]


def split_table(df: pd.DataFrame, cfg: SplitParams) -> pd.DataFrame:
    """The table with a `split` column, rows ordered by row_id (so output is order-free too)."""
    out = df.copy()
    clusters = out["cluster_id"].tolist()  # one conversion, not one Arrow scalar per row
    out["split"] = pd.array(assign_splits(clusters, cfg), dtype="string")
    out = out.sort_values("row_id", kind="stable").reset_index(drop=True)
    return SplitRows.validate(out)


def split_summary(df: pd.DataFrame) -> dict[str, Any]:
    counts = df.groupby(["split", "lang"]).size().unstack(fill_value=0)
    return {
        "rows": len(df),
        "rows_by_split": {s: int((df["split"] == s).sum()) for s in SPLITS},
        "rows_by_split_and_lang": {
            s: {str(k): int(v) for k, v in counts.loc[s].items()}
            for s in SPLITS
            if s in counts.index
        },
        "clusters_crossing_splits": int((df.groupby("cluster_id")["split"].nunique() > 1).sum()),
    }


def run_split(params: Params) -> dict[str, Any]:
    """The edge: split the validated table and write one parquet file per split."""
    paths = params.paths
    table = split_table(read_table(paths.validated), params.split)
    for name in SPLITS:
        part = table[table["split"].to_numpy() == name].drop(columns="split")
        write_table(part.reset_index(drop=True), paths.split(name))
    summary = split_summary(table)
    write_json(summary, paths.report("split"))
    return summary
