"""Fast paths of clean: LSH band grouping by a 64-bit mix; chunked work equals one chunk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sftops.data.dedup as dedup
from sftops.data.dedup import first_equal_row


def _by_bytes(block: np.ndarray) -> np.ndarray:
    keys = np.ascontiguousarray(block).view(np.dtype((np.void, block.itemsize * block.shape[1])))
    _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    return first[inverse]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=n)
    )
)
def test_first_equal_row_equals_grouping_by_bytes(rows: list[list[int]]) -> None:
    block = np.array(rows, dtype=np.uint32)
    assert first_equal_row(block).tolist() == _by_bytes(block).tolist()


def test_a_mix_collision_falls_back_to_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A zero multiplier sends every row to the same mix: the equality check must catch it.
    monkeypatch.setattr(dedup, "_MIX", np.uint64(0))
    block = np.array([[1, 2], [3, 4], [1, 2], [5, 6], [3, 4]], dtype=np.uint32)
    assert first_equal_row(block).tolist() == [0, 1, 0, 3, 1]


def test_signature_bands_of_real_size_group_like_the_bytes() -> None:
    rng = np.random.default_rng(0)
    block = rng.integers(0, 2**32, size=(5000, 8), dtype=np.uint32)
    block[rng.integers(0, 5000, 700)] = block[rng.integers(0, 5000, 700)]  # shared bands
    assert first_equal_row(block).tolist() == _by_bytes(block).tolist()


def test_clean_in_chunks_equals_clean_in_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-chunk work (exact-dup keys seen within a chunk, signatures, rows left to the
    detector) gives the result of the whole table cleaned as one chunk."""
    import sftops.parallel as parallel
    from sftops.config import CleanParams
    from sftops.data.clean import clean_table
    from tests.helpers import canonical_table

    english = [
        {"instruction": f"Explain why the {w} is important for the city.", "output": o}
        for w in ("river", "bridge", "market", "river", "garden", "school", "bridge")
        for o in ("It helps the people who live there every day.", "Because it is old.")
    ]
    french = [{"instruction": "Pourquoi le ciel est-il bleu ?", "output": "A cause de la lumière."}]
    chinese = [{"instruction": "請解釋這個問題", "output": "這是一個簡單的答案。"}]
    records = english[:6] + french + english[6:11] + chinese + english[11:] + french
    table = canonical_table(records)
    whole = clean_table(table, CleanParams())
    monkeypatch.setattr(parallel, "CHUNK_ROWS", 4)  # chunks with and without detector rows
    chunked = clean_table(table, CleanParams())
    assert chunked.fingerprint() == whole.fingerprint()
    assert set(whole.quarantine["reason"]) >= {"exact_duplicate", "language"}


def test_first_index_of_equal_matches_a_sort() -> None:
    rng = np.random.default_rng(1)
    for size in (0, 1, 2, 1000):
        values = rng.integers(0, max(size // 3, 1), size=size).astype(np.uint64)
        _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        assert dedup.first_index_of_equal(values).tolist() == first[inverse].tolist()


def test_near_duplicate_similarity_is_the_mean_agreement_with_the_representative() -> None:
    rng = np.random.default_rng(2)
    signatures = rng.integers(0, 4, size=(400, 128), dtype=np.uint32)  # many shared bands
    representative, similarity = dedup.near_duplicate_representatives(signatures, 0.3)
    expected = (signatures == signatures[representative]).mean(axis=1)
    assert (representative != np.arange(400)).any()
    assert similarity.tolist() == expected.tolist()
