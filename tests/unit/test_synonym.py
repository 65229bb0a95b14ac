from __future__ import annotations

import random

import pytest

from sftops.augment.synonym import SynonymSource, candidate_words, eda_variant
from sftops.augment.wordnet import lexnames_text, load_wordnet
from sftops.config import SynonymParams


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> SynonymSource:
    return SynonymSource(load_wordnet(str(tmp_path_factory.mktemp("cache"))))


def test_lexnames_has_the_45_standard_files() -> None:
    lines = lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[3] == "03\tnoun.Tops\t1" and lines[29] == "29\tverb.body\t2"


@pytest.mark.parametrize(
    ("word", "pos"), [("ocean", "n"), ("quick", "a"), ("describe", "v"), ("stopped", "v")]
)
def test_synonyms_keep_the_part_of_speech(source: SynonymSource, word: str, pos: str) -> None:
    synonyms = source.synonyms(word)
    assert synonyms, word
    lemma = source.wn.morphy(word, pos)
    for synonym in synonyms:
        base = source.wn.morphy(synonym.replace(" ", "_"), pos) or synonym
        assert source.wn.synsets(base.replace(" ", "_"), pos), (word, synonym)
    assert source.dominant_pos(word) == (pos, lemma)


def test_synonyms_keep_plural_and_verb_inflection(source: SynonymSource) -> None:
    assert "volumes" in source.synonyms("books")
    assert "halted" in source.synonyms("stopped")
    assert all(s.endswith("s") for s in source.synonyms("describes"))


def test_protected_spans_and_names_are_never_candidates() -> None:
    text = (
        "Please email [EMAIL] about Paris at https://example.org/report today, "
        "run `make report` and add 42 reports\n```python\nreport = fetch()\n```"
    )
    words = [s.word for s in candidate_words(text)]
    assert words == ["email", "today", "run", "add", "reports"]


def test_code_blocks_placeholders_and_numbers_survive_heavy_augmentation(
    source: SynonymSource,
) -> None:
    text = "Fix the quick function below and describe 3 changes for [NAME].\n```py\nx = 1\n```"
    cfg = SynonymParams(alpha=1.0, random_swap=0.5, random_delete=0.3, random_insert=0.3)
    for seed in range(20):
        out = eda_variant(text, source, cfg, random.Random(seed))
        assert out.endswith("```py\nx = 1\n```")
        assert "[NAME]" in out and "3" in out


def test_synonym_replacement_changes_some_words_and_is_seeded(source: SynonymSource) -> None:
    text = "Describe the ocean and the quick ships in a short story."
    cfg = SynonymParams(alpha=0.5)
    first = eda_variant(text, source, cfg, random.Random(1))
    assert first != text
    assert first == eda_variant(text, source, cfg, random.Random(1))


def test_text_without_candidates_comes_back_unchanged(source: SynonymSource) -> None:
    for text in ["```\nprint(1)\n```", "12 + 30 = 42", "法国的首都是哪里？", ""]:
        assert eda_variant(text, source, SynonymParams(alpha=1.0), random.Random(0)) == text
