from __future__ import annotations

import random

import pytest

from sftops.augment.synonym import (
    ChineseSynonyms,
    SynonymSource,
    chinese_edit_problem,
    chinese_spans,
    chinese_word_edits,
    eda_variant,
    english_spans,
)
from sftops.augment.tagger import TagCache, tag_chinese, tag_english
from sftops.augment.wordnet import lexnames_text, load_wordnet
from sftops.config import SynonymParams


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> SynonymSource:
    return SynonymSource(load_wordnet(str(tmp_path_factory.mktemp("cache"))))


@pytest.fixture(scope="module")
def chinese() -> ChineseSynonyms:
    return ChineseSynonyms()


def english_variant(text: str, source: SynonymSource, alpha: float = 1.0, seed: int = 0) -> str:
    spans = english_spans(text, tag_english([text])[0], source)
    return eda_variant(
        text, spans, source.synonyms, SynonymParams(alpha=alpha), random.Random(seed)
    )


def tag_of(text: str, word: str) -> str:
    return next(t.tag for t in tag_english([text])[0] if text[t.start : t.end] == word)


def test_lexnames_has_the_45_standard_files() -> None:
    lines = lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[3] == "03\tnoun.Tops\t1" and lines[29] == "29\tverb.body\t2"


def test_the_tagger_reads_the_part_of_speech_from_the_sentence() -> None:
    assert tag_of("Can you please book a flight to Paris?", "book") == "VB"
    assert tag_of("This is a good book.", "book") == "NN"


def test_book_a_flight_keeps_its_verb_and_a_good_book_is_a_noun(source: SynonymSource) -> None:
    # The verb is the task ("volume a flight" was accepted before); the noun's synonyms are
    # nouns, never verbs like "reserve".
    assert source.synonyms("book", "VB") == ()
    for seed in range(10):
        assert english_variant("Can you please book a flight to Paris?", source, seed=seed) in {
            "Can you please book a flight to Paris?"
        }
    noun = set(source.synonyms("book", "NN"))
    assert not noun & {"reserve", "hold", "volume"}  # "book" has no dominant synonym sense
    assert source.synonyms("laboratory", "NN") and "lab" in source.synonyms("laboratory", "NN")


def test_synonyms_agree_in_number_and_tense(source: SynonymSource) -> None:
    plural = source.synonyms("humans", "NNS")
    assert plural and all(s.endswith(("s", "men")) for s in plural), plural
    assert "purchased" in source.synonyms("bought", "VBD")
    assert "purchases" in source.synonyms("buys", "VBZ")
    assert "anticipating" in source.synonyms("expecting", "VBG")
    out = english_variant("In what ways do humans affect the climate?", source)
    assert out in {f"In what ways do {s} affect the climate?" for s in plural}, out


def test_names_task_verbs_and_multi_word_expressions_are_left_alone(
    source: SynonymSource,
) -> None:
    text = "Translate the story about New York and the ice cream shop, then list the laboratories."
    words = [s.word for s in english_spans(text, tag_english([text])[0], source)]
    assert "translate" not in words and "list" not in words
    assert "ice" not in words and "cream" not in words
    assert "laboratories" in words and "story" in words


def test_protected_spans_and_answer_words_are_never_candidates(source: SynonymSource) -> None:
    text = (
        "Please email [EMAIL] about Paris at https://example.org/report today, "
        "run `make report` and classify the review as positive or negative"
    )
    spans = english_spans(text, tag_english([text])[0], source, frozenset({"positive"}))
    words = [s.word for s in spans]
    assert "report" not in words and "positive" not in words and "paris" not in words
    assert "review" in words


def test_code_blocks_placeholders_and_numbers_survive_heavy_augmentation(
    source: SynonymSource,
) -> None:
    text = "Fix the quick function below and describe 3 changes for [NAME].\n```py\nx = 1\n```"
    spans = english_spans(text, tag_english([text])[0], source)
    cfg = SynonymParams(alpha=1.0, random_swap=0.5, random_delete=0.3, random_insert=0.3)
    for seed in range(20):
        out = eda_variant(text, spans, source.synonyms, cfg, random.Random(seed))
        assert out.endswith("```py\nx = 1\n```")
        assert "[NAME]" in out and "3" in out


def test_synonym_replacement_is_seeded(source: SynonymSource) -> None:
    text = "We bought a laboratory and waited for the results."
    first = english_variant(text, source, alpha=0.5, seed=1)
    assert first != text
    assert first == english_variant(text, source, alpha=0.5, seed=1)


def test_chinese_replacement_uses_the_thesaurus_in_the_tagged_part_of_speech(
    chinese: ChineseSynonyms,
) -> None:
    text = "判断下面评论的情感是正面还是负面。上周在海港烧烤吃了晚饭，体验很好。"
    spans = chinese_spans(text, tag_chinese([text])[0], keep="正面\n负面")
    words = {s.word for s in spans}
    assert "判断" in words and "正面" not in words  # labels stay as the answer says
    assert chinese.synonyms("判断", "v") == ()  # the task verb
    assert "感情" in chinese.synonyms("情感", "n")
    assert "晚餐" in chinese.synonyms("晚饭", "n")
    assert chinese.synonyms("情感", "v") == ()  # no verb sense in Cilin
    out = eda_variant(text, spans, chinese.synonyms, SynonymParams(alpha=1.0), random.Random(0), "")
    assert out != text and "正面还是负面" in out and "海港烧烤" in out


def test_chinese_names_and_titles_are_left_alone() -> None:
    text = "李娜看了《纸上王国》，去了星辰公司。"
    words = {s.word for s in chinese_spans(text, tag_chinese([text])[0])}
    assert not words & {"李娜", "纸上", "王国", "星辰"}


def test_text_without_candidates_comes_back_unchanged(source: SynonymSource) -> None:
    for text in ["```\nprint(1)\n```", "12 + 30 = 42", ""]:
        assert english_variant(text, source) == text


def test_tag_cache_persists_and_skips_the_tagger(tmp_path, monkeypatch) -> None:
    cache = TagCache(tmp_path / "tags.jsonl")
    first = cache.tag(["A good book.", "一本好书。"], "en")
    cache.save()
    monkeypatch.setattr("sftops.augment.tagger.tag_english", lambda texts: 1 / 0)
    again = TagCache(tmp_path / "tags.jsonl").tag(["A good book.", "一本好书。"], "en")
    assert again == first


def test_chinese_replacement_of_another_word_class_or_a_name_is_refused() -> None:
    keep = chinese_word_edits("成人门票20元，儿童免费。", "成人门票20元，孩子免费。")
    assert [(e.word, e.replacement, e.tag) for e in keep] == [("儿童", "孩子", "n")]
    assert chinese_edit_problem(keep) is None
    # 童子 is a name (nr) in jieba's dictionary; 冲破 a verbal noun where 打破 is a verb.
    name_like = chinese_word_edits("成人门票20元，儿童免费。", "成人门票20元，童子免费。")
    assert chinese_edit_problem(name_like) == "changed_word_class"
    verbal_noun = chinese_word_edits("刘洋打破亚洲跳高纪录。", "刘洋冲破亚洲跳高纪录。")
    assert chinese_edit_problem(verbal_noun) == "changed_word_class"
    # A word glued to a name suffix belongs to the name (小巷饺子馆 is a restaurant).
    name = chinese_word_edits("终于去了小巷饺子馆。", "终于去了小街饺子馆。")
    assert chinese_edit_problem(name) == "changed_name"


def test_chinese_thesaurus_offers_only_synonyms_with_the_words_exact_tag(
    chinese: ChineseSynonyms,
) -> None:
    assert "童子" not in chinese.synonyms("儿童", "n")  # nr: a name
    assert "冲破" not in chinese.synonyms("打破", "v")  # vn
