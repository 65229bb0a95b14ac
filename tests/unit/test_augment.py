from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sftops.augment.augment import augment_table
from sftops.augment.backtranslate import mask_protected, unmask
from sftops.config import AugmentParams, CleanParams
from sftops.data.clean import clean_table
from tests.helpers import canonical_table


class BagOfWordsEmbedder:
    """Deterministic stand-in for the sentence model: hashed bag of lower-case words."""

    name = "bag-of-words"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


ROWS = [
    {"instruction": "Describe the laboratory we bought last year.", "output": "It is big."},
    {
        "instruction": "Summarize the report about the quick ships.",
        "input": "Ships sail fast.",
        "output": "Ships are fast.",
    },
    {
        "instruction": "Classify the sentiment of the review.",
        "input": "A lovely film.",
        "output": "positive",
        "label": "positive",
    },
    {
        "instruction": "判断下面评论的情感是正面还是负面。",
        "input": "上周吃了晚饭，体验很好。",
        "output": "正面",
        "label": "positive",
    },
    {"instruction": "Run:", "input": "```py\nprint(1)\n```", "output": "1"},
    {"instruction": "What is 12 + 30?", "output": "42"},
]


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return clean_table(canonical_table(ROWS), CleanParams(min_alnum_ratio=0)).kept


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder per module, so WordNet is laid out and loaded once."""
    return tmp_path_factory.mktemp("cache")


def params(**overrides: object) -> AugmentParams:
    base = {
        "enabled": True,
        "languages": ["en", "zh"],
        "backtranslation": {"enabled": False},
        "filter": {"min_similarity": 0.3, "fluency_model": None},
    }
    if "filter" in overrides:
        overrides = {**overrides, "filter": {**base["filter"], **overrides["filter"]}}  # type: ignore[dict-item]
    return AugmentParams.model_validate({**base, **overrides})


class WordPenaltyScorer:
    """Stand-in for the fluency LM: each listed word costs 10 nats, every other word 1."""

    name = "word-penalty"

    def __init__(self, costly: set[str]) -> None:
        self.costly = costly
        self.calls = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.array(
            [
                [sum(10.0 if w.strip(".,!?") in self.costly else 1.0 for w in t.split())]
                for t in texts
            ],
            dtype=np.float32,
        )


def test_augmented_rows_keep_reference_outputs_and_provenance(
    train: pd.DataFrame, cache: Path
) -> None:
    result = augment_table(
        train, params(synonym={"alpha": 0.5, "n_aug": 2}), cache, BagOfWordsEmbedder()
    )
    table = result.table
    originals = table[table["aug_method"] == "original"]
    added = table[table["aug_method"] != "original"]
    pd.testing.assert_frame_equal(
        originals.drop(columns=["aug_method", "parent_id"]).reset_index(drop=True),
        train.reset_index(drop=True),
        check_dtype=False,
    )
    assert len(added) > 0 and set(added["aug_method"]) == {"synonym"}
    parents = train.set_index("row_id")
    for row in added.itertuples():
        parent = parents.loc[row.parent_id]
        assert row.output == parent["output"]
        assert pd.isna(row.label) == pd.isna(parent["label"])
        assert row.cluster_id == parent["cluster_id"]
        assert row.instruction != parent["instruction"] or row.input != parent["input"]
    assert table["row_id"].is_unique


def test_rows_outside_the_languages_are_skipped_and_counted(
    train: pd.DataFrame, cache: Path
) -> None:
    result = augment_table(train, params(languages=["en"]), cache, BagOfWordsEmbedder())
    assert result.summary()["skipped_rows"] == {"language_zh": 1}
    zh_id = train.loc[train["lang"] == "zh", "row_id"].item()
    assert zh_id not in set(result.table["parent_id"].dropna())


def test_chinese_rows_get_synonyms_and_keep_their_labels(train: pd.DataFrame, cache: Path) -> None:
    cfg = params(synonym={"alpha": 1.0}, filter={"min_similarity": -1.0})
    result = augment_table(train, cfg, cache, BagOfWordsEmbedder())
    zh = train.loc[train["lang"] == "zh"].iloc[0]
    added = result.table[result.table["parent_id"] == zh["row_id"]]
    assert len(added) == 1
    row = added.iloc[0]
    assert "正面还是负面" in row["instruction"] and row["output"] == "正面"
    assert (row["instruction"], row["input"]) != (zh["instruction"], zh["input"])
    assert "感情" in row["instruction"] or "晚餐" in row["input"]


def test_the_fluency_check_rejects_what_the_language_model_finds_unlikely(
    train: pd.DataFrame, cache: Path
) -> None:
    cfg = params(synonym={"alpha": 1.0}, filter={"fluency_model": "word-penalty"})
    plain = augment_table(train, params(synonym={"alpha": 1.0}), cache, BagOfWordsEmbedder())
    accepted = plain.table[plain.table["aug_method"] == "synonym"]
    new_words = {
        w.strip(".,!?")
        for text in accepted["instruction"] + " " + accepted["input"]
        for w in text.split()
    } - {
        w.strip(".,!?")
        for text in train["instruction"] + " " + train["input"]
        for w in text.split()
    }
    assert new_words
    scorer = WordPenaltyScorer(new_words)
    strict = augment_table(train, cfg, cache, BagOfWordsEmbedder(), scorer)
    rejected = strict.summary()["methods"]["synonym"]["rejected_by_reason"]
    assert rejected.get("less_fluent", 0) >= 1 and scorer.calls > 0
    assert strict.summary()["rows_added"] < plain.summary()["rows_added"]


def test_code_only_and_number_only_rows_are_rejected_as_unchanged(
    train: pd.DataFrame, cache: Path
) -> None:
    result = augment_table(train, params(synonym={"alpha": 1.0}), cache, BagOfWordsEmbedder())
    rejected = result.summary()["methods"]["synonym"]["rejected_by_reason"]
    assert rejected.get("unchanged", 0) >= 2
    counts = result.summary()["methods"]["synonym"]
    assert counts["candidates"] == counts["accepted"] + sum(rejected.values())


def test_similarity_threshold_rejects_everything_when_set_to_one(
    train: pd.DataFrame, cache: Path
) -> None:
    result = augment_table(
        train, params(filter={"min_similarity": 1.0}), cache, BagOfWordsEmbedder()
    )
    assert result.summary()["rows_added"] == 0


def test_rerun_uses_the_embedding_cache(train: pd.DataFrame, cache: Path) -> None:
    embedder = BagOfWordsEmbedder()
    embedder.name = "bag-of-words-rerun"  # its own cache entry: earlier tests filled theirs
    first = augment_table(train, params(seed=99), cache, embedder)
    calls = embedder.calls
    second = augment_table(train, params(seed=99), cache, embedder)
    assert calls > 0 and embedder.calls == calls
    pd.testing.assert_frame_equal(first.table, second.table)


def test_disabled_or_empty_train_passes_rows_through(train: pd.DataFrame, cache: Path) -> None:
    off = augment_table(train, params(enabled=False), cache, BagOfWordsEmbedder())
    assert len(off.table) == len(train) and (off.table["aug_method"] == "original").all()
    empty = augment_table(train.iloc[:0], params(), cache, BagOfWordsEmbedder())
    assert len(empty.table) == 0 and empty.summary()["rows_added"] == 0


def test_max_rows_limits_the_augmented_rows_deterministically(
    train: pd.DataFrame, cache: Path
) -> None:
    a = augment_table(train, params(max_rows=2), cache, BagOfWordsEmbedder())
    b = augment_table(train.iloc[::-1], params(max_rows=2), cache, BagOfWordsEmbedder())
    assert a.summary()["skipped_rows"]["over_max_rows"] == 4
    assert set(a.table["parent_id"].dropna()) == set(b.table["parent_id"].dropna())


def test_mask_round_trip_keeps_placeholders() -> None:
    masked, tokens = mask_protected("Mail [EMAIL] at https://x.org or `cmd`")
    assert (
        "[EMAIL]" not in masked
        and unmask(masked, tokens) == "Mail [EMAIL] at https://x.org or `cmd`"
    )


class PhraseCostScorer:
    """Stand-in for the fluency LM on Chinese: each listed word in a text costs (or saves) nats."""

    name = "phrase-cost"

    def __init__(self, costs: dict[str, float]) -> None:
        self.costs = costs

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        rows = [[sum(c * t.count(w) for w, c in self.costs.items())] for t in texts]
        return np.array(rows, dtype=np.float32)


def test_a_chinese_rewrite_is_judged_by_its_worst_replacement() -> None:
    from sftops.augment.augment import judge

    original = "判断下面评论的情感是正面还是负面。\n台灯收到时外壳就裂了，儿童免费。"
    good = original.replace("情感", "感情")
    # In the sum, 感情 (-6 nats) hides 吸收 (+5): -1 passes a limit of 0; alone, 吸收 does not.
    mixed = good.replace("收到", "吸收")
    name_like = original.replace("儿童", "童子")  # 童子 is a name (nr) in jieba's dictionary
    cfg = params(
        filter={"fluency_model": "phrase-cost", "max_nll_increase_zh": 0.0, "min_similarity": -1}
    )
    reasons, _, nll = judge(
        [original] * 3,
        [good, mixed, name_like],
        ["synonym"] * 3,
        ["zh"] * 3,
        cfg,
        None,
        BagOfWordsEmbedder(),
        PhraseCostScorer({"感情": -6.0, "吸收": 5.0}),
    )
    assert reasons[0] is None and nll[0] == -6.0
    assert reasons[1] == "less_fluent" and nll[1] == 5.0
    assert reasons[2] == "changed_word_class"
