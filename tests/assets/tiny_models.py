"""Tiny randomly initialised causal LMs with tokenizers built in code (no hub, no network).

- :func:`tiny_gpt2`: GPT2LMHeadModel (2 layers, 32 wide) + byte-level BPE tokenizer, eos
  ``<|endoftext|>``, *no* chat template (like real GPT-2: ``prepare_tokenizer`` gives it ChatML).
- :func:`tiny_llama`: LlamaForCausalLM (2 layers, hidden 32) + byte-level BPE tokenizer with
  ``<|im_start|>`` / ``<|im_end|>``, eos ``<|im_end|>``, pad ``<|pad|>`` and a ChatML template
  that, like SmolLM2's, injects a default system message when the conversation has none.

Byte-level BPE encodes any text (Chinese included) and decodes it back exactly. Each builder
writes a ``save_pretrained`` (safetensors) folder of well under 1 MB in well under a second,
loadable by ``sftops.modeling.models.load_causal_lm`` / ``load_tokenizer``.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TINY_LLAMA_SYSTEM = "You are a tiny test model."
"""The default system message :data:`TINY_LLAMA_TEMPLATE` injects (as SmolLM2's does)."""

TINY_LLAMA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + TINY_LLAMA_SYSTEM + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Translate the sentence into Spanish. Summarise the text below in one line.",
    "You are a helpful assistant. Answer the question briefly and politely.",
    "def add(a, b):\n    return a + b\n",
    "1 + 2 = 3, 10 * 10 = 100",
    "user assistant system",
    "你好，世界。中国的首都是北京。请把这句话翻译成英文。",
]


def _byte_level_bpe(special_tokens: list[str], vocab_size: int = 384) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


def tiny_gpt2(tmp_dir: str | Path) -> Path:
    """A tiny GPT-2 model folder (no chat template); returns its path ``tmp_dir/tiny-gpt2``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = Path(tmp_dir) / "tiny-gpt2"
    eos = "<|endoftext|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe([eos]), eos_token=eos, bos_token=eos, unk_token=eos
    )
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def tiny_llama(tmp_dir: str | Path) -> Path:
    """A tiny Llama chat model folder (ChatML template); returns ``tmp_dir/tiny-llama``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(tmp_dir) / "tiny-llama"
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(specials),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
    )
    tokenizer.chat_template = TINY_LLAMA_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out
