"""The real engines: Apertium round trips, a tiny seq2seq model, the MiniLM similarity filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sftops.augment.backtranslate import (
    ApertiumTranslator,
    Seq2SeqTranslator,
    TranslationCache,
    back_translate,
)
from sftops.augment.similarity import Embedder, rejection_reason
from sftops.config import AugmentFilterParams
from sftops.errors import SftopsError

pytestmark = pytest.mark.integration


def test_apertium_round_trip_rewords_many_lines_in_one_call(tmp_path: Path) -> None:
    texts = [
        "Write a short poem about the ocean.",
        "Classify the sentiment of the review as positive or negative.",
        "Call me at [PHONE] after six.",
        "First line.\nSecond line.",
    ]
    cache = TranslationCache(tmp_path / "t.jsonl")
    out = back_translate(ApertiumTranslator(["spa"]), cache, texts, "spa")
    assert len(out) == len(texts)
    assert out[0] != texts[0] and "poem" in out[0] and "ocean" in out[0]
    assert "[PHONE]" in out[2]  # placeholders are masked through the round trip
    assert out[3].count("\n") == 1
    cache.save()
    reloaded = TranslationCache(tmp_path / "t.jsonl")
    assert len(reloaded.entries) == len(cache.entries) > 0


def test_apertium_catalan_pivot_and_unknown_pivot() -> None:
    out = back_translate(
        ApertiumTranslator(["cat"]), TranslationCache(None), ["Good morning."], "cat"
    )
    assert out[0]
    with pytest.raises(SftopsError, match="unknown Apertium pivot 'xx'"):
        ApertiumTranslator(["xx"])


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised Marian model with a word-level tokenizer, built in the test."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("marian")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in "hello world the cat sat on mat a short poem about ocean".split():
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        forced_eos_token_id=1,
    )
    import torch

    torch.manual_seed(0)  # the random weights decide what the round trip produces
    MarianMTModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_seq2seq_engine_translates_in_batches_with_a_local_model(tiny_marian: Path) -> None:
    translator = Seq2SeqTranslator(
        {"en-xx": str(tiny_marian), "xx-en": str(tiny_marian)}, batch_size=2, max_new_tokens=8
    )
    texts = ["hello world", "the cat sat on the mat", "a short poem\nabout the ocean"]
    out = back_translate(translator, TranslationCache(None), texts, "xx")
    assert len(out) == 3 and out[2].count("\n") == 1
    assert all(isinstance(t, str) for t in out)
    with pytest.raises(SftopsError, match="no model for 'en-de'"):
        translator.translate(["hello"], "en-de")


def test_seq2seq_engine_keeps_blank_lines_blank_without_calling_the_model(
    tiny_marian: Path,
) -> None:
    # A random model's forward pass can come back empty; the return trip then holds blank
    # lines, which this word-level tokenizer encodes to zero tokens (no end-of-sequence token).
    translator = Seq2SeqTranslator({"xx-en": str(tiny_marian)}, batch_size=2, max_new_tokens=4)
    assert translator.translate(["", "  "], "xx-en") == ["", ""]
    out = translator.translate(["", "hello world", " "], "xx-en")
    assert out[0] == "" and out[2] == "" and isinstance(out[1], str)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_similarity_filter_rejects_a_meaning_change_and_keeps_a_paraphrase(
    embedder: Embedder,
) -> None:
    original = "Write a short poem about the ocean at night."
    paraphrase = "Compose a brief poem about the sea at night."
    changed = "List three reasons to invest in government bonds."
    vectors = embedder([original, paraphrase, changed])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cfg = AugmentFilterParams(min_similarity=0.7)
    assert rejection_reason(original, paraphrase, float(vectors[0] @ vectors[1]), cfg) is None
    assert (
        rejection_reason(original, changed, float(vectors[0] @ vectors[2]), cfg) == "low_similarity"
    )


def test_chinese_rows_are_back_translated_with_a_seq2seq_model_and_counted_without(
    tiny_marian: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sftops.augment import augment
    from sftops.augment.augment import backtranslation_candidates

    # The tiny model has 64 positions: generate a few tokens only.
    monkeypatch.setattr(
        augment,
        "make_translator",
        lambda engine, pivots, models, batch_size: Seq2SeqTranslator(models, 2, 8),
    )
    from sftops.config import AugmentParams
    from tests.helpers import canonical_table

    train = canonical_table(
        [
            {"instruction": "用一句话概括下面这段文字。", "input": "hello world", "output": "x"},
            {"instruction": "Describe the cat.", "output": "A cat."},
        ]
    ).assign(lang=["zh", "en"])
    folder = str(tiny_marian)
    cfg = AugmentParams.model_validate(
        {
            "backtranslation": {
                "engine": "seq2seq",
                "pivots": ["en"],
                "models": {"zh-en": folder, "en-zh": folder},
            }
        }
    )
    from collections import Counter

    skipped: Counter[str] = Counter()
    cache = TranslationCache(None)
    candidates, bleu = backtranslation_candidates(train, [0, 1], cfg, cache, skipped)
    assert [c.parent for c in candidates] == [0] and candidates[0].method == "backtranslation:en"
    assert skipped == {"backtranslation_no_model_en": 1}  # English cannot pivot through itself
    assert "zh:en" in bleu
    assert {k for k in cache.entries} and len(cache.entries) >= 2  # both directions ran
    no_models = cfg.model_copy(
        update={"backtranslation": cfg.backtranslation.model_copy(update={"models": {}})}
    )
    skipped = Counter()
    assert backtranslation_candidates(train, [0, 1], no_models, cache, skipped)[0] == []
    assert skipped == {"backtranslation_no_model_zh": 1, "backtranslation_no_model_en": 1}


def test_fp32_embeddings_are_the_default_and_keyed_by_precision() -> None:
    import torch

    from sftops.augment.similarity import embedder_name, embedding_dtype

    assert AugmentFilterParams().precision == "fp32"
    assert embedding_dtype("fp32") == torch.float32 and embedding_dtype() == torch.float32
    assert embedding_dtype("bf16") == torch.bfloat16
    assert embedder_name(None).endswith("-float32")
    assert embedder_name(None, "bf16").endswith("-bfloat16")
    fp32 = Embedder(precision="fp32")
    assert fp32.device == "cpu" and next(fp32.model.parameters()).dtype == torch.float32


def test_fluency_scorer_sums_token_nll_on_a_tiny_model(tmp_path: Path) -> None:
    from sftops.augment.fluency import FluencyScorer, fluency_name
    from tests.assets.tiny_models import tiny_llama

    folder = tiny_llama(tmp_path / "tiny")
    scorer = FluencyScorer(folder, batch_size=2)
    texts = ["The quick brown fox.", "The quick brown fox jumps over the lazy dog.", "狐狸"]
    scores = scorer(texts)
    assert scores.shape == (3, 1) and (scores > 0).all()
    assert scores[1, 0] > scores[0, 0]  # a sum: longer text, more nats
    again = scorer(list(reversed(texts)))[::-1]
    assert np.allclose(scores, again, atol=1e-4)  # batching and order do not change a score
    assert scorer.name == fluency_name(str(folder))
    exact = FluencyScorer(folder, batch_size=2, exact=True)  # the near-limit re-check
    exact_scores = exact(texts)
    assert exact_scores.dtype == np.float64 and exact.name == fluency_name(str(folder), exact=True)
    assert np.allclose(exact_scores, scores, rtol=1e-5) and exact.name != scorer.name


def test_the_fp64_embedder_agrees_with_fp32_to_its_last_bits(embedder: Embedder) -> None:
    """The twin the similarity filter asks near a boundary: same model, fp64 throughout."""
    import torch

    exact = Embedder(precision="fp64")
    assert next(exact.model.parameters()).dtype == torch.float64
    assert exact.name.endswith("-float64") and exact.name != embedder.name
    texts = ["Write a short poem about the ocean at night.", "Compose a brief sea poem."]
    vectors, exact_vectors = embedder(texts), exact(texts)
    assert exact_vectors.dtype == np.float64
    assert np.abs(vectors - exact_vectors).max() < 1e-5
