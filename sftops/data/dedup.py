"""Exact and near-duplicate detection.

Near duplicates: MinHash signatures from rensa (Rust), then LSH banding and union-find done with
numpy over the whole signature matrix, so a million rows cost no Python loop per row pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import chain

import numpy as np

MINHASH_SEED = 1234
FP_WEIGHT, FN_WEIGHT = 0.2, 0.8
SIGNATURE_CHUNK_ROWS = 20_000  # rows per rensa call (bounds its list-of-lists temporaries)
_EMPTY_SET = frozenset({""})


def first_occurrence_of(keys: Sequence[str]) -> np.ndarray:
    """Index of the first row with the same key, per row (a row that is first maps to itself).

    >>> first_occurrence_of(["a", "b", "a"]).tolist()
    [0, 1, 0]
    """
    first: dict[str, int] = {}
    return np.fromiter((first.setdefault(k, i) for i, k in enumerate(keys)), dtype=np.int64)


@cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows per band minimising the weighted false positive and false negative
    areas at ``threshold`` (datasketch's criterion), restricted to bands dividing ``num_perm``.

    False negatives weigh more: a missed pair is a duplicate kept, while a false candidate only
    costs one signature comparison.

    >>> lsh_bands(0.8, 128)
    (16, 8)
    """

    # Imported here: the clean workers load this module but never call this (scipy.integrate
    # costs ~1.5 s to import, once per worker process).
    from scipy.integrate import quad

    def false_positive(b: int, r: int) -> float:
        return quad(lambda s: 1 - (1 - s**r) ** b, 0.0, threshold)[0]

    def false_negative(b: int, r: int) -> float:
        return quad(lambda s: 1 - (1 - (1 - s**r) ** b), threshold, 1.0)[0]

    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        if num_perm % bands:
            continue
        rows = num_perm // bands
        error = FP_WEIGHT * false_positive(bands, rows) + FN_WEIGHT * false_negative(bands, rows)
        if error < best_error:
            best, best_error = (bands, rows), error
    return best


def minhash_of_sets(token_sets: Sequence[set[str]], num_perm: int) -> np.ndarray:
    """A (rows, num_perm) uint32 MinHash matrix of token sets (an empty set counts as {""}).

    MinHash does not depend on token order, so the sets go to rensa as they are; rensa's result
    (a Python list per row) is converted chunk by chunk to keep that temporary small.
    """
    from rensa import RMinHash

    out = np.empty((len(token_sets), num_perm), dtype=np.uint32)
    for start in range(0, len(token_sets), SIGNATURE_CHUNK_ROWS):
        chunk = [s or _EMPTY_SET for s in token_sets[start : start + SIGNATURE_CHUNK_ROWS]]
        rows = RMinHash.digests_from_token_sets(chunk, num_perm, MINHASH_SEED)
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.uint32, count=len(rows) * num_perm)
        out[start : start + len(chunk)] = flat.reshape(len(rows), num_perm)
    return out


_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): a multiplicative mix


def first_index_of_equal(values: np.ndarray) -> np.ndarray:
    """For each value of a 1-D array, the index of its first occurrence: one hash-table pass
    (``pd.factorize``) where ``np.unique`` sorts (this runs once per LSH band over every row).

    >>> first_index_of_equal(np.array([7, 3, 7, 5, 3], dtype=np.uint64)).tolist()
    [0, 1, 0, 3, 1]
    """
    import pandas as pd

    codes, _ = pd.factorize(values, sort=False)  # numbered in order of first appearance
    if codes.size == 0:
        return codes.astype(np.int64)
    # A first occurrence is where the code exceeds every code before it; the k-th such
    # position is where code k first appears.
    running_max = np.maximum.accumulate(codes)
    is_first = np.empty(codes.size, dtype=bool)
    is_first[0] = True
    np.greater(codes[1:], running_max[:-1], out=is_first[1:])
    return np.flatnonzero(is_first)[codes]


def first_equal_row(block: np.ndarray) -> np.ndarray:
    """For each row of a 2-D unsigned integer array, the index of the first row equal to it.

    Rows are grouped by a 64-bit mix of their values (hashing integers, where sorting the
    rows as raw bytes is several times slower); equality is then checked row by row, and a mix
    collision (never seen, but possible) falls back to grouping by the bytes themselves.

    >>> first_equal_row(np.array([[1, 2], [3, 4], [1, 2], [3, 5]], dtype=np.uint32)).tolist()
    [0, 1, 0, 3]
    """
    block = np.ascontiguousarray(block)
    mixed = np.zeros(block.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in block.T:
            mixed = (mixed ^ column.astype(np.uint64)) * _MIX
            mixed ^= mixed >> np.uint64(29)
    head = first_index_of_equal(mixed)
    if (block == block[head]).all():
        return head
    keys = block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel()
    _, first_index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first_index[inverse]


def near_duplicate_representatives(
    signatures: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the first row (lowest index) of its near-duplicate cluster, and the
    estimated Jaccard similarity to that representative.

    Rows sharing an LSH band bucket are linked to the bucket's first row when their MinHash
    agreement (the Jaccard estimate) reaches ``threshold``; clusters are the connected
    components of those links (union-find), so a chain of near duplicates is one cluster.
    """
    n, num_perm = signatures.shape
    representative = np.arange(n)
    if n < 2:
        return representative, np.ones(n)
    bands, rows = lsh_bands(threshold, num_perm)
    sources, targets = [], []
    for band in range(bands):
        head = first_equal_row(signatures[:, band * rows : (band + 1) * rows])
        candidates = np.nonzero(head != np.arange(n))[0]
        if candidates.size == 0:
            continue
        agreement = (signatures[candidates] == signatures[head[candidates]]).mean(axis=1)
        linked = agreement >= threshold
        sources.append(candidates[linked])
        targets.append(head[candidates[linked]])
    if sources:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        src, dst = np.concatenate(sources), np.concatenate(targets)
        graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        lowest = np.full(labels.max() + 1, n)
        np.minimum.at(lowest, labels, np.arange(n))
        representative = lowest[labels]
    # A row that represents itself agrees with itself everywhere: 1.0, as the mean would give.
    similarity = np.ones(n)
    others = np.flatnonzero(representative != np.arange(n))
    similarity[others] = (signatures[others] == signatures[representative[others]]).mean(axis=1)
    return representative, similarity
