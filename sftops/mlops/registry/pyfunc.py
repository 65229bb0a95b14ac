"""The registered model: a pyfunc wrapper of the fine-tuned folder, answering with sftops' own
chat template and generation, logged as "models from code" (no pickle)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

MODEL_ARTIFACT = "model"  # name of the logged model inside the run
HF_ARTIFACT_KEY = "hf_model"  # key of the Hugging Face folder among the pyfunc artifacts


class ChatModel(PythonModel):
    """Pyfunc wrapper of a fine-tuned Hugging Face folder, served with sftops' own chat code.

    Input (signature-checked): a DataFrame with a ``prompt`` column (the user message) and
    optionally ``system``. Output: one answer string per row. Prompts go through the model's
    chat template with the same helpers as training and evaluation
    (``formatting.generation_prompt``); decoding stops at the end of the assistant turn.
    Params: ``max_new_tokens``, ``strategy`` (greedy/beam/sample), ``temperature``, ``top_p``.
    Loading needs ``sftops`` (and torch/transformers) importable.
    """

    def load_context(self, context: Any) -> None:
        from sftops.modeling.models import load_causal_lm, load_tokenizer

        folder = context.artifacts[HF_ARTIFACT_KEY]
        self.tokenizer = load_tokenizer(folder)
        self.model = load_causal_lm(folder, tokenizer=self.tokenizer)

    # A DataFrame hint tells MLflow not to derive a signature from type hints: the explicit
    # signature from `signature()` is the contract.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[str]:
        from sftops.config import GenerationParams
        from sftops.modeling.formatting import generation_prompt
        from sftops.modeling.generate import generate

        if isinstance(model_input, str):
            rows: list[dict[str, Any]] = [{"prompt": model_input}]
        elif isinstance(model_input, pd.DataFrame):
            rows = model_input.to_dict(orient="records")
        else:
            rows = [{"prompt": str(p)} for p in model_input]
        prompts = []
        for row in rows:
            system, prompt = row.get("system"), row.get("prompt")  # NaN/None when absent
            messages = []
            if isinstance(system, str) and system.strip():
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": prompt if isinstance(prompt, str) else ""})
            prompts.append(generation_prompt(self.tokenizer, messages))
        settings = {k: v for k, v in (params or {}).items() if v is not None}
        cfg = GenerationParams(**settings)
        return [g.text for g in generate(self.model, self.tokenizer, prompts, cfg)]


# The import path is part of every registered version (MLflow stores this script with the
# model), so it names the package's public facade, which keeps exporting ChatModel.
MODEL_CODE = '''"""sftops chat model, logged as MLflow "models from code" (no pickle)."""

import mlflow

from sftops.mlops.registry import ChatModel

mlflow.models.set_model(ChatModel())
'''
"""The script MLflow stores with the model and runs to load it (needs `sftops` importable)."""


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("string", "system", required=False)]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema(
            [
                ParamSpec("max_new_tokens", "long", 128),
                ParamSpec("strategy", "string", "greedy"),
                ParamSpec("temperature", "double", 0.7),
                ParamSpec("top_p", "double", 0.9),
            ]
        ),
    )


def pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for package in ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "sftops"):
        try:
            reqs.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            reqs.append(package)
    return reqs


def input_example() -> pd.DataFrame:
    return pd.DataFrame({"prompt": ["What is the capital of France?"]})
