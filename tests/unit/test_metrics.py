from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu

from sftops.evaluation.metrics import (
    UNPARSEABLE,
    MetricResult,
    bleu_by_lang,
    bootstrap_corpus_metric,
    char_tokenize,
    chrf_by_lang,
    classification_report,
    corpus_bleu,
    corpus_chrf,
    exact_match,
    mean_nll_and_perplexity,
    normalize_answer,
    paired_bootstrap,
    parse_label,
    rouge_l,
    sentence_chrf,
    token_f1,
)

EN_HYP = ["The cat is sitting on the mat today.", "A quick brown fox jumps over a lazy dog."]
EN_REF = ["The cat sat on the mat today.", "The quick brown fox jumped over the lazy dog."]
ZH_HYP = ["今天猫坐在垫子上。", "敏捷的棕色狐狸跳过了懒狗。"]
ZH_REF = ["今天猫在垫子上坐着。", "那只敏捷的棕色狐狸跳过了那只懒狗。"]
SENTIMENT = ["positive", "negative", "neutral"]
ALIASES = {"正面": "positive", "负面": "negative", "积极": "positive", "消极": "negative"}


# --- BLEU / chrF ----------------------------------------------------------------------------


def test_identical_corpus_scores_100() -> None:
    texts = ["the cat sat on the mat", "a dog ran in the park"]
    assert corpus_bleu(texts, texts, ["en", "en"]).score == pytest.approx(100.0)
    assert corpus_chrf(texts, texts, ["en", "en"]).score == pytest.approx(100.0)


def test_bleu_matches_sacrebleu_and_returns_its_signature() -> None:
    result = corpus_bleu(EN_HYP, EN_REF, ["en", "en"])
    expected = sacrebleu.corpus_bleu(EN_HYP, [EN_REF])
    assert result.score == pytest.approx(expected.score)
    assert 0 < result.score < 100
    assert result.n == 2
    assert result.signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_chinese_uses_zh_tokenizer() -> None:
    result = corpus_bleu(ZH_HYP, ZH_REF, ["zh", "zh"])
    assert "tok:zh" in result.signature
    assert result.score == pytest.approx(
        sacrebleu.corpus_bleu(ZH_HYP, [ZH_REF], tokenize="zh").score
    )
    # With 13a the unsegmented Chinese would be a handful of "words" and score far lower.
    assert result.score > sacrebleu.corpus_bleu(ZH_HYP, [ZH_REF], tokenize="13a").score


def test_mixed_languages_are_row_weighted_mean_of_groups() -> None:
    hyps = [*EN_HYP, ZH_HYP[0]]
    refs = [*EN_REF, ZH_REF[0]]
    langs = ["en", "en", "zh"]
    groups = bleu_by_lang(hyps, refs, langs)
    assert set(groups) == {"en", "zh"}
    assert "tok:13a" in groups["en"].signature and "tok:zh" in groups["zh"].signature
    assert groups["en"].score == pytest.approx(sacrebleu.corpus_bleu(EN_HYP, [EN_REF]).score)
    overall = corpus_bleu(hyps, refs, langs)
    assert overall.score == pytest.approx((2 * groups["en"].score + groups["zh"].score) / 3)
    assert overall.n == 3
    assert overall.signature.startswith("mean-by-rows[en:2 ")
    assert "tok:zh" in overall.signature


def test_chrf_matches_sacrebleu_per_group() -> None:
    result = chrf_by_lang([*EN_HYP, *ZH_HYP], [*EN_REF, *ZH_REF], ["en", "en", "zh", "zh"])
    assert result["en"].score == pytest.approx(sacrebleu.corpus_chrf(EN_HYP, [EN_REF]).score)
    assert result["zh"].score == pytest.approx(sacrebleu.corpus_chrf(ZH_HYP, [ZH_REF]).score)
    assert "nc:6" in result["en"].signature
    overall = corpus_chrf([*EN_HYP, *ZH_HYP], [*EN_REF, *ZH_REF], ["en", "en", "zh", "zh"])
    assert overall.score == pytest.approx((result["en"].score + result["zh"].score) / 2)


def test_empty_corpus_scores_zero_and_mismatch_names_lengths() -> None:
    empty = corpus_bleu([], [], [])
    assert isinstance(empty, MetricResult)
    assert (empty.score, empty.n) == (0.0, 0)
    assert "tok:13a" in empty.signature
    assert corpus_chrf([], [], []).score == 0.0
    with pytest.raises(ValueError, match=r"hypotheses=2, references=1, langs=2"):
        corpus_bleu(["a", "b"], ["a"], ["en", "en"])


def test_sentence_chrf() -> None:
    assert sentence_chrf("猫坐在垫子上", "猫坐在垫子上", "zh") == pytest.approx(100.0)
    assert sentence_chrf("", "abc") == 0.0
    expected = sacrebleu.sentence_chrf(EN_HYP[0], [EN_REF[0]]).score
    assert sentence_chrf(EN_HYP[0], EN_REF[0], "en") == pytest.approx(expected)


# --- ROUGE-L --------------------------------------------------------------------------------


def test_rouge_l_hand_computed_lcs() -> None:
    # LCS("a b c d e", "a c e f") = "a c e" -> P = 3/5, R = 3/4, F = 2PR/(P+R) = 2/3.
    assert rouge_l("a b c d e", "a c e f") == pytest.approx(2 / 3)
    # Stemming: "cats"/"cat" and "sitting"/"sit" match. LCS = 5 of 6 on both sides.
    assert rouge_l("The cats are sitting on mats", "the cat is sitting on mat") == pytest.approx(
        5 / 6
    )
    assert rouge_l("", "anything") == 0.0


def test_rouge_l_chinese_is_character_level() -> None:
    # LCS("猫坐在垫子上", "猫躺在垫子上") = 猫在垫子上: 5 of 6 characters.
    assert rouge_l("猫坐在垫子上", "猫躺在垫子上", "zh") == pytest.approx(5 / 6)
    assert rouge_l("今天天气很好", "今天天气不错", "zh") > 0.5
    # The default (English) tokenizer drops Chinese entirely.
    assert rouge_l("猫坐在垫子上", "猫躺在垫子上", "en") == 0.0
    assert char_tokenize("用iPhone拍照") == ["用", "iphone", "拍", "照"]


# --- EM / token F1 --------------------------------------------------------------------------


def test_normalize_answer_squad_rules() -> None:
    assert normalize_answer("The Cat, sat!  on   a mat.") == "cat sat on mat"
    assert normalize_answer("An apple") == "apple"
    assert normalize_answer("《红楼梦》，", "zh") == "红楼梦"
    assert normalize_answer("the 巴黎", "zh") == "the巴黎"  # no article removal for Chinese


def test_exact_match_english_and_chinese() -> None:
    assert exact_match("the Eiffel Tower.", "Eiffel Tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert exact_match("“巴黎”。", "巴黎", "zh") == 1.0
    assert exact_match("巴 黎", "巴黎", "zh") == 1.0
    assert exact_match("北京", "巴黎", "zh") == 0.0


def test_token_f1_squad_examples() -> None:
    # "cat sat" vs "cat sat on mat" after normalisation: P = 2/2, R = 2/4, F1 = 2/3.
    assert token_f1("the cat sat", "a cat sat on the mat") == pytest.approx(2 / 3)
    # Counter overlap: pred "on on mat" vs ref "on mat": common = {on: 1, mat: 1} = 2,
    # P = 2/3, R = 2/2 -> F1 = 0.8.
    assert token_f1("on on mat", "on mat") == pytest.approx(0.8)
    assert token_f1("Denver Broncos", "denver broncos!") == 1.0
    assert token_f1("Seattle", "Denver Broncos") == 0.0
    assert token_f1("", "") == 1.0  # SQuAD v2: both empty
    assert token_f1("the", "cat") == 0.0  # prediction normalises to nothing


def test_token_f1_chinese_characters() -> None:
    # 北京市 vs 北京: common 2, P = 2/3, R = 1 -> F1 = 0.8.
    assert token_f1("北京市。", "北京", "zh") == pytest.approx(0.8)
    # 中华人民共和国 (7 chars) vs 人民共和国 (5): P = 5/7, R = 1 -> F1 = 10/12.
    assert token_f1("中华人民共和国", "人民共和国", "zh") == pytest.approx(10 / 12)
    # Without character handling the same pair would score 0.
    assert token_f1("中华人民共和国", "人民共和国", "en") == 0.0


# --- Classification -------------------------------------------------------------------------


def test_parse_label_english() -> None:
    assert parse_label("Positive", SENTIMENT) == "positive"
    assert parse_label("The sentiment is **NEGATIVE**.", SENTIMENT) == "negative"
    assert parse_label("positive! definitely positive", SENTIMENT) == "positive"
    assert parse_label("Label:neutral", SENTIMENT) == "neutral"


def test_parse_label_chinese_aliases() -> None:
    assert parse_label("正面", SENTIMENT, ALIASES) == "positive"
    assert parse_label("这条评论的情感是消极的。", SENTIMENT, ALIASES) == "negative"
    assert parse_label("情感：positive（积极）", SENTIMENT, ALIASES) == "positive"
    with pytest.raises(ValueError, match="not in"):
        parse_label("x", SENTIMENT, {"好": "good"})


def test_parse_label_unparseable_and_ambiguous() -> None:
    assert parse_label("I cannot tell.", SENTIMENT) is None
    assert parse_label("", SENTIMENT) is None
    assert parse_label("positively surprising", SENTIMENT) is None  # word boundary
    assert parse_label("positive or negative", SENTIMENT) is None
    assert parse_label("既有正面也有负面", SENTIMENT, ALIASES) is None


def test_classification_report_hand_computed() -> None:
    labels = ["positive", "negative", "neutral"]
    gold = ["positive", "positive", "positive", "negative", "negative", "neutral"]
    pred = ["positive", "negative", None, "negative", "positive", None]
    report = classification_report(pred, gold, labels)
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(2 / 6)
    assert report["n_unparseable"] == 2
    assert report["unparseable_rate"] == pytest.approx(2 / 6)
    cm = report["confusion_matrix"]
    assert cm["rows"] == labels
    assert cm["columns"] == [*labels, UNPARSEABLE]
    assert cm["matrix"] == [
        [1, 1, 0, 1],  # gold positive
        [1, 1, 0, 0],  # gold negative
        [0, 0, 0, 1],  # gold neutral
    ]
    pos, neg, neu = (report["per_class"][label] for label in labels)
    # positive: TP 1, predicted 2, gold 3 -> P 1/2, R 1/3, F1 2*(1/6)/(5/6) = 0.4
    assert (pos["precision"], pos["recall"], pos["f1"], pos["support"]) == pytest.approx(
        (0.5, 1 / 3, 0.4, 3)
    )
    assert (neg["precision"], neg["recall"], neg["f1"], neg["support"]) == pytest.approx(
        (0.5, 0.5, 0.5, 2)
    )
    assert (neu["precision"], neu["recall"], neu["f1"], neu["support"]) == (0.0, 0.0, 0.0, 1)
    assert report["macro_f1"] == pytest.approx((0.4 + 0.5 + 0.0) / 3)


def test_classification_report_edge_cases() -> None:
    empty = classification_report([], [], ["a", "b"])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"]) and math.isnan(empty["macro_f1"])
    assert empty["confusion_matrix"]["matrix"] == [[0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match=r"pred_labels=1, gold=2"):
        classification_report(["a"], ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="gold labels not in labels"):
        classification_report(["a"], ["c"], ["a", "b"])
    perfect = classification_report(["a", "b"], ["a", "b"], ["a", "b"])
    assert perfect["accuracy"] == perfect["macro_f1"] == 1.0


# --- Perplexity -----------------------------------------------------------------------------


def test_mean_nll_is_token_weighted() -> None:
    mean, ppl = mean_nll_and_perplexity([[1.0, 2.0], [3.0]])
    assert mean == pytest.approx(2.0)  # (1 + 2 + 3) / 3, not mean of row means (2.25)
    assert ppl == pytest.approx(math.exp(2.0))
    assert mean_nll_and_perplexity([[math.log(4.0)] * 5])[1] == pytest.approx(4.0)
    assert all(math.isnan(x) for x in mean_nll_and_perplexity([]))
    assert mean_nll_and_perplexity([[1e6]])[1] == math.inf


# --- Bootstrap ------------------------------------------------------------------------------


def _bernoulli(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    scores = _bernoulli(200, 0.6, seed=1)
    result = paired_bootstrap(scores, seed=3)
    assert result["mean_a"] == pytest.approx(scores.mean())
    low, high = result["ci_a"]
    assert low < result["mean_a"] < high
    assert "mean_diff" not in result
    assert paired_bootstrap(scores, seed=3) == result
    assert paired_bootstrap(scores, seed=4)["ci_a"] != result["ci_a"]


def test_bootstrap_ci_narrows_with_more_rows() -> None:
    small = paired_bootstrap(_bernoulli(50, 0.5, seed=1))
    large = paired_bootstrap(_bernoulli(2000, 0.5, seed=1))
    width = {name: r["ci_a"][1] - r["ci_a"][0] for name, r in [("s", small), ("l", large)]}
    assert width["l"] < width["s"] / 3  # ~ 1/sqrt(40) of it in expectation


def test_paired_bootstrap_identical_and_better_systems() -> None:
    a = _bernoulli(300, 0.5, seed=2)
    same = paired_bootstrap(a, a.copy())
    assert same["mean_diff"] == 0.0
    assert same["ci_diff"][0] <= 0.0 <= same["ci_diff"][1]
    assert same["frac_a_gt_b"] == 0.0 and same["p_value"] == 1.0
    b = a * _bernoulli(300, 0.6, seed=5)  # B only keeps some of A's successes
    better = paired_bootstrap(a, b)
    assert better["mean_diff"] > 0
    assert better["ci_diff"][0] > 0
    assert better["frac_a_gt_b"] == 1.0 and better["p_value"] == 0.0


def test_bootstrap_validation_and_empty() -> None:
    with pytest.raises(ValueError, match=r"scores_a=3, scores_b=2"):
        paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="ci must be"):
        paired_bootstrap([1.0], ci=1.5)
    empty = paired_bootstrap([], [])
    assert math.isnan(empty["mean_a"]) and math.isnan(empty["ci_diff"][0])


def test_bootstrap_corpus_bleu_fast_path_matches_recomputation() -> None:
    hyps = [*EN_HYP, *ZH_HYP]
    refs = [*EN_REF, *ZH_REF]
    langs = ["en", "en", "zh", "zh"]
    fast = bootstrap_corpus_metric(hyps, refs, "bleu", langs, hypotheses_b=refs, n_resamples=100)
    slow = bootstrap_corpus_metric(
        hyps, refs, corpus_bleu, langs, hypotheses_b=refs, n_resamples=100
    )
    assert fast["mean_a"] == pytest.approx(corpus_bleu(hyps, refs, langs).score)
    assert fast["mean_b"] == pytest.approx(100.0)
    for key in ("ci_a", "ci_b", "ci_diff"):
        assert fast[key] == pytest.approx(slow[key])
    assert fast["p_value"] == 1.0  # the reference always beats the hypothesis
    low, high = fast["ci_a"]
    assert low <= fast["mean_a"] <= high


def test_bootstrap_corpus_chrf_and_identical_systems() -> None:
    hyps, refs = [*EN_HYP, *ZH_HYP], [*EN_REF, *ZH_REF]
    langs = ["en", "en", "zh", "zh"]
    result = bootstrap_corpus_metric(
        hyps, refs, "chrf", langs, hypotheses_b=list(hyps), n_resamples=200, seed=7
    )
    assert result["mean_a"] == pytest.approx(corpus_chrf(hyps, refs, langs).score)
    assert result["ci_diff"] == (0.0, 0.0)
    again = bootstrap_corpus_metric(
        hyps, refs, "chrf", langs, hypotheses_b=list(hyps), n_resamples=200, seed=7
    )
    assert again == result
    with pytest.raises(ValueError, match="hypotheses=4, hypotheses_b=1"):
        bootstrap_corpus_metric(hyps, refs, "bleu", langs, hypotheses_b=["x"])
    assert math.isnan(bootstrap_corpus_metric([], [], "bleu")["mean_a"])
