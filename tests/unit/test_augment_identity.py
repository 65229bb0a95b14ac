"""The augment filter decides the same on every CPU: fp32 scores that differ in their last bits
between machines (ISA, thread count) give the same similarities and the same decisions, because
a score that close to a threshold or a rounding boundary is recomputed in fp64."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from sftops.augment.augment import (
    NLL_BAND,
    SIMILARITY_BAND,
    judge,
    near_boundary,
)
from sftops.config import AugmentParams

ORIGINAL = "Describe the weather in the valley today."
CANDIDATE = "Explain the weather in the valley today."


def unit(cosine: float) -> np.ndarray:
    return np.array([cosine, np.sqrt(1.0 - cosine**2)])


class TwoTextEmbedder:
    """A machine's embedding model: the candidate lies at ``cosine`` to the original; ``exact``
    is the fp64 twin every machine agrees on."""

    name = "two-text"

    def __init__(self, cosine: float, exact: float | None) -> None:
        self.cosine = cosine
        self.exact = None if exact is None else TwoTextEmbedder(exact, None)
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([unit(1.0) if t == ORIGINAL else unit(self.cosine) for t in texts])


class TwoTextScorer:
    """A machine's fluency model: summed NLL 50 for the original, ``50 + increase`` for the
    candidate; ``exact`` as for :class:`TwoTextEmbedder`."""

    name = "two-text-nll"

    def __init__(self, increase: float, exact: float | None) -> None:
        self.increase = increase
        self.exact = None if exact is None else TwoTextScorer(exact, None)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([[50.0 if t == ORIGINAL else 50.0 + self.increase] for t in texts])


def decide(embedder: TwoTextEmbedder, scorer: TwoTextScorer | None = None) -> tuple:
    cfg = AugmentParams.model_validate({"filter": {"fluency_model": None}})
    reasons, similarity, nll = judge(
        [ORIGINAL], [CANDIDATE], ["synonym"], ["en"], cfg, None, embedder, scorer
    )
    return reasons[0], float(similarity[0]), None if np.isnan(nll[0]) else float(nll[0])


def test_last_bit_differences_at_the_threshold_give_one_decision_on_every_machine() -> None:
    # The decision is on the similarity rounded to 4 decimals, so with the threshold 0.85 the
    # edge is 0.84995: one machine's fp32 lands just under it, another's just over.
    under = decide(TwoTextEmbedder(0.84995 - 2e-7, exact=0.849950001))
    over = decide(TwoTextEmbedder(0.84995 + 2e-7, exact=0.849950001))
    assert under == over == (None, np.float32(0.85), None)
    under = decide(TwoTextEmbedder(0.84995 - 2e-7, exact=0.849949999))
    over = decide(TwoTextEmbedder(0.84995 + 2e-7, exact=0.849949999))
    assert under == over == ("low_similarity", np.float32(0.8499), None)


def test_without_the_fp64_twin_the_machines_would_disagree() -> None:
    """The same two machines with no re-check (an injected model without ``exact``): the
    failure the re-check exists for."""
    under = decide(TwoTextEmbedder(0.84995 - 2e-7, exact=None))
    over = decide(TwoTextEmbedder(0.84995 + 2e-7, exact=None))
    assert under[0] == "low_similarity" and over[0] is None


def test_last_bit_differences_at_a_rounding_boundary_give_one_similarity() -> None:
    # 0.91235 is where rounding to 4 decimals flips between 0.9123 and 0.9124.
    low = decide(TwoTextEmbedder(0.91235 - 1e-7, exact=0.9123500004))
    high = decide(TwoTextEmbedder(0.91235 + 1e-7, exact=0.9123500004))
    assert low == high
    assert low[1] == np.float32(0.9124)
    assert decide(TwoTextEmbedder(0.91235 - 1e-7, exact=None))[1] == np.float32(0.9123)


def test_scores_far_from_any_boundary_are_not_recomputed() -> None:
    exact = TwoTextEmbedder(0.1, None)  # wrong on purpose: it must not be asked
    embedder = TwoTextEmbedder(0.91231, exact=None)
    embedder.exact = exact
    assert decide(embedder)[:2] == (None, np.float32(0.9123))
    assert exact.calls == 0


def test_last_bit_differences_of_the_nll_increase_give_one_decision() -> None:
    # The limit for an English synonym is 1.0 and the increase is rounded to 2 decimals, so
    # 1.005 is the edge: 1.0049 is kept, 1.0051 is rejected as less fluent.
    similar = TwoTextEmbedder(0.95, exact=None)
    kept = decide(similar, TwoTextScorer(1.0051, exact=1.0049))
    also_kept = decide(similar, TwoTextScorer(1.0049, exact=1.0049))
    assert kept == also_kept == (None, np.float32(0.95), np.float32(1.0))
    rejected = decide(similar, TwoTextScorer(1.0049, exact=1.0051))
    assert rejected[0] == "less_fluent"


def test_near_boundary_flags_every_value_a_small_error_could_move() -> None:
    """Outside the band, no error smaller than the band changes the rounding or the side."""
    rng = random.Random(0)
    for _ in range(20_000):
        decimals, band = rng.choice([(4, SIMILARITY_BAND), (2, NLL_BAND)])
        threshold = rng.choice([0.85, 1.0, 2.0])
        value = threshold + rng.uniform(-0.01, 0.01)
        if near_boundary(value, decimals, band, threshold):
            continue
        for error in (band * 0.99, -band * 0.99):
            moved = value + error
            assert round(moved, decimals) == round(value, decimals), (value, error)
            assert (moved < threshold) == (value < threshold), (value, error)


def test_nll_increases_far_from_the_limit_are_not_recomputed() -> None:
    """Only the side of the limit is used, so a value near a rounding edge far from the limit
    (0.305) is not re-scored: the fp64 model is loaded only when a decision could flip."""
    similar = TwoTextEmbedder(0.95, exact=None)
    scorer = TwoTextScorer(0.305, exact=None)
    scorer.exact = TwoTextScorer(9.0, exact=None)  # wrong on purpose: it must not be asked
    assert decide(similar, scorer)[0] is None
