"""One typed model of params.yaml, used by the CLI, the DVC stages and the Prefect flows.

Every section is a pydantic model with ``extra="forbid"`` so a misspelt key is an error, and
field descriptions double as CLI help and the Prefect UI form.

Kept as one module over 500 lines on purpose: it is the single typed mirror of params.yaml (a
section per stage, read top to bottom like the file) and a leaf that imports only
:mod:`sftops.errors`, so every layer can import it without cycles.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sftops.errors import ConfigError

DEFAULT_PARAMS_FILE = Path("params.yaml")
SourceFormat = Literal[
    "auto", "alpaca_json", "json", "jsonl", "sharegpt", "csv", "parquet", "hf_dataset"
]
SplitName = Literal["train", "validation", "test"]
PromptField = Literal["instruction", "input"]
PiiKind = Literal["email", "phone", "ip", "credit_card", "api_key", "cn_id"]
CACHE_DIR_ENV = "SFTOPS_CACHE_DIR"
CHECKOUT_CACHE = ".cache"


def cache_location(path: str, env: Mapping[str, str] | None = None) -> str:
    """``path`` with the checkout's ``.cache/`` folder replaced by ``$SFTOPS_CACHE_DIR`` when
    that is set, so separate clones on one machine (two people's checkouts, CI clones) share one
    cache and the base model is dequantised once per machine; other paths are kept.

    >>> cache_location(".cache/sftops", {"SFTOPS_CACHE_DIR": "/srv/sftops-cache"})
    '/srv/sftops-cache/sftops'
    >>> cache_location(".cache/sftops", {})
    '.cache/sftops'
    >>> cache_location("/ws/.cache/sftops", {"SFTOPS_CACHE_DIR": "/srv/c"})
    '/ws/.cache/sftops'
    """
    shared = (os.environ if env is None else env).get(CACHE_DIR_ENV)
    parts = Path(path).parts
    if not shared or not parts or parts[0] != CHECKOUT_CACHE:
        return path
    # absolute: stage processes run in a run's workspace, not where the run was started
    return os.path.abspath(os.path.join(os.path.expanduser(shared), *parts[1:]))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsParams(Section):
    """Where each stage reads and writes; dvc.yaml interpolates these, so they are declared once."""

    ingested: str = Field(
        "data/interim/ingested.parquet", description="Canonical table after ingest."
    )
    cleaned: str = Field("data/interim/cleaned.parquet", description="Table after cleaning.")
    validated: str = Field(
        "data/interim/validated.parquet", description="Rows that passed the schema."
    )
    splits_dir: str = Field(
        "data/splits", description="Folder of train/validation/test parquet files."
    )
    train_aug: str = Field(
        "data/splits/train_aug.parquet", description="Train split plus accepted augmentations."
    )
    quarantine_dir: str = Field("data/quarantine", description="Rejected rows with their reason.")
    reports_dir: str = Field("reports", description="Stage reports (JSON + markdown).")
    model_dir: str = Field("models/sft", description="Fine-tuned model (final + best).")
    checkpoints_dir: str = Field(
        "models/checkpoints", description="Resumable training checkpoints (not versioned)."
    )
    cache_dir: str = Field(
        ".cache/sftops",
        description="Caches (base models, embeddings, translations, WordNet layout); not data. "
        "Under .cache/: moved to $SFTOPS_CACHE_DIR when set (one cache for every clone).",
        validate_default=True,
    )

    @field_validator("cache_dir")
    @classmethod
    def _shared_cache(cls, value: str) -> str:
        return cache_location(value)

    def quarantine(self, stage: str) -> Path:
        return Path(self.quarantine_dir) / f"{stage}.jsonl"

    def report(self, stage: str, suffix: str = "json") -> Path:
        return Path(self.reports_dir) / f"{stage}_report.{suffix}"

    def split(self, name: SplitName) -> Path:
        return Path(self.splits_dir) / f"{name}.parquet"


class SourceParams(Section):
    path: str = Field(description="File or folder to read.")
    name: str | None = Field(None, description="Source name recorded per row (default: file stem).")
    format: SourceFormat = Field("auto", description="Input format; auto-detected from content.")
    weight: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0,
        description="Mixture weight: the fraction of this source's rows kept, chosen by row hash "
        "(deterministic). Upsampling belongs to training, so weights are at most 1.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Map canonical field -> column in this source, e.g. {instruction: prompt}.",
    )
    encoding: str = Field(
        "auto",
        description="Text encoding (a Python codec name such as utf-8, gb18030, latin-1); auto: "
        "byte-order mark, else UTF-8, else detected (charset-normalizer). Reported per source.",
    )
    field: str | None = Field(
        None,
        description="JSON file whose top level is an object: the key (dotted for nested, e.g. "
        "data.rows) holding the list of records.",
    )

    @model_validator(mode="after")
    def _known_encoding(self) -> SourceParams:
        if self.encoding != "auto":
            import codecs

            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self


class IngestParams(Section):
    sources: list[SourceParams] = Field(
        default_factory=lambda: [
            SourceParams(path="data/sample/alpaca_en.json"),
            SourceParams(path="data/sample/alpaca_zh.jsonl"),
            SourceParams(path="data/sample/chat_sharegpt.jsonl"),
            SourceParams(path="data/sample/reviews.csv"),
        ],
        min_length=1,
        description="Input files; each may set its format, mixture weight and column mapping.",
    )
    max_field_chars: int = Field(
        200_000, ge=1, description="Fields longer than this are quarantined at ingest."
    )


class NearDedupParams(Section):
    enabled: bool = Field(True, description="Remove near duplicates with MinHash LSH.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity threshold.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    word_ngram: int = Field(2, ge=1, description="Word shingle size for space-separated text.")
    char_ngram: int = Field(2, ge=1, description="Character shingle size for CJK text.")
    drop: bool = Field(
        True,
        description="Drop all but the first row of each cluster; false keeps them, tagged with a "
        "shared cluster_id so that split keeps each cluster within one split.",
    )

    @model_validator(mode="after")
    def _bands_divide(self) -> NearDedupParams:
        if self.num_perm % 8:
            raise ValueError("num_perm must be a multiple of 8 (LSH bands must divide it)")
        return self


class CleanParams(Section):
    normalize_unicode: bool = Field(True, description="NFKC (full-width -> half-width) etc.")
    strip_html: bool = Field(True, description="Remove HTML tags outside code blocks.")
    scrub_pii: bool = Field(True, description="Replace PII with typed placeholders like [EMAIL].")
    pii_kinds: list[PiiKind] = Field(
        default_factory=lambda: list(get_args(PiiKind)),
        description="Kinds of PII to scrub.",
    )
    min_instruction_chars: int = Field(2, ge=0, description="Shorter instructions are dropped.")
    min_output_chars: int = Field(1, ge=0, description="Shorter outputs are dropped.")
    max_chars: int = Field(8000, ge=1, description="Rows longer than this (all turns) are dropped.")
    max_repetition: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Drop rows whose duplicated word-trigram fraction exceeds this.",
    )
    min_alnum_ratio: float = Field(
        0.3, ge=0, le=1, description="Drop rows whose letters/digits (CJK included) are rarer."
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en", "zh"], description="ISO 639-1 codes of languages to keep."
    )
    to_simplified: bool = Field(True, description="Convert traditional Chinese to simplified.")
    exact_dedup: bool = Field(True, description="Drop exact duplicates of normalised text.")
    near_dedup: NearDedupParams = Field(default_factory=NearDedupParams)

    @model_validator(mode="after")
    def _min_below_max(self) -> CleanParams:
        if self.min_instruction_chars > self.max_chars:
            raise ValueError("min_instruction_chars must not exceed max_chars")
        return self


class ValidateParams(Section):
    max_invalid_fraction: float = Field(
        0.05, ge=0, le=1, description="Fail the stage when more than this fraction is invalid."
    )
    labels: list[str] = Field(
        default_factory=lambda: [
            "positive",
            "negative",
            "sports",
            "politics",
            "technology",
            "business",
        ],
        description="Allowed labels for classification rows.",
    )


class SplitParams(Section):
    validation: float = Field(0.1, ge=0, lt=1, description="Fraction of rows for validation.")
    test: float = Field(0.1, ge=0, lt=1, description="Fraction of rows for test.")
    salt: str = Field("sftops", description="Hash salt; change it to draw a different split.")

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitParams:
        if self.validation + self.test >= 1:
            raise ValueError("validation + test must be < 1 so that train is not empty")
        return self


class SynonymParams(Section):
    enabled: bool = Field(True, description="EDA-style WordNet synonym replacement.")
    alpha: float = Field(
        0.15, ge=0, le=1, description="Fraction of eligible words replaced by a synonym."
    )
    n_aug: int = Field(1, ge=0, le=16, description="Augmented variants per row.")
    random_insert: float = Field(0.0, ge=0, le=1, description="Fraction of words inserted.")
    random_swap: float = Field(0.0, ge=0, le=1, description="Fraction of words swapped.")
    random_delete: float = Field(0.0, ge=0, le=1, description="Probability a word is deleted.")


class BackTranslationParams(Section):
    enabled: bool = Field(True, description="Round trip en -> pivot -> en.")
    engine: Literal["apertium", "seq2seq"] = Field(
        "apertium", description="Apertium (Debian packages) or local seq2seq models."
    )
    pivots: list[str] = Field(
        default_factory=lambda: ["spa"],
        description="Pivot languages (Apertium codes: spa, cat; seq2seq: the keys of models).",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="seq2seq engine: local model folders per direction, e.g. "
        "{en-es: models/opus-mt-en-es, es-en: models/opus-mt-es-en}.",
    )
    batch_size: int = Field(32, ge=1, description="seq2seq generation batch size.")
    max_chars: int = Field(2000, ge=1, description="Longer texts are not back-translated.")


class AugmentFilterParams(Section):
    min_similarity: float = Field(
        0.85, ge=-1, le=1, description="Minimum embedding cosine similarity to the original."
    )
    min_length_ratio: float = Field(0.5, gt=0, description="Minimum new/original length.")
    max_length_ratio: float = Field(2.0, gt=0, description="Maximum new/original length.")
    fluency_model: str | None = Field(
        "smollm2-135m-instruct",
        description="Causal LM (built-in name or folder) scoring how much less likely a "
        "candidate is than its original; null turns the fluency check off.",
    )
    max_nll_increase: float = Field(
        1.0,
        description="Synonym candidates: reject when the summed token NLL rises by more than "
        "this (nats) over the original's (chosen on the tuning half of the labelled set).",
    )
    max_nll_increase_backtranslation: float = Field(
        2.0, description="The same for back-translated candidates (a round trip rewords more)."
    )
    max_nll_increase_zh: float = Field(
        -2.0,
        description="Chinese synonym candidates: reject when the largest NLL change of one "
        "replacement alone exceeds this (negative: the LM knows little Chinese, so only a "
        "replacement it finds clearly more likely is kept; chosen on the tuning half, see "
        "bench/results/augment_filter.txt for the precision/recall curve).",
    )
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32",
        description="Embedding precision. fp32 gives the same accepted rows on every CPU; bf16 "
        "is ~2.4x faster where the CPU has AMX/AVX512-BF16 but decisions near the threshold "
        "then depend on the machine; auto = bf16 on such CPUs and GPUs, else fp32.",
    )


class AugmentParams(Section):
    enabled: bool = Field(
        False,
        description="Run augmentation (false copies train through). Off by default: the "
        "ablation in bench/results/augment_ablation.md found no gain (see params.yaml).",
    )
    max_rows: int | None = Field(
        None, ge=0, description="Augment at most this many train rows (chosen by hash)."
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="Languages of rows eligible for augmentation (en, zh).",
    )
    fields: list[PromptField] = Field(
        default_factory=lambda: list(get_args(PromptField)),
        description="Prompt fields to augment; reference outputs are never changed.",
    )
    seed: int = Field(0, description="Seed for the per-row random generators.")
    embedding_model: str | None = Field(
        None, description="Sentence-embedding model folder (default: all-MiniLM-L6-v2 package)."
    )
    synonym: SynonymParams = Field(default_factory=SynonymParams)
    backtranslation: BackTranslationParams = Field(default_factory=BackTranslationParams)
    filter: AugmentFilterParams = Field(default_factory=AugmentFilterParams)


class LoraParams(Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt (default: all linear layers but the head)."
    )


class TrainParams(Section):
    base_model: str = Field(
        "smollm2-135m-instruct",
        description="Built-in name (smollm2-135m-instruct), a local model folder, or a hub id.",
    )
    method: Literal["full", "lora", "freeze"] = Field(
        "full", description="Full fine-tune, LoRA adapters, or train only the last N layers."
    )
    trainable_layers: int = Field(2, ge=1, description="method=freeze: layers left trainable.")
    lora: LoraParams = Field(default_factory=LoraParams)
    max_length: int = Field(256, ge=16, description="Tokens per example (and per packed row).")
    packing: bool = Field(True, description="Pack examples into rows, no cross-attention.")
    batch_size: int = Field(4, ge=1, description="Rows per micro-batch.")
    grad_accum: int = Field(2, ge=1, description="Micro-batches per optimizer step.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data.")
    max_steps: int | None = Field(
        8,
        ge=1,
        description="Stop after this many optimizer steps (the default keeps the demo's training "
        "to a few minutes on 2 CPU cores with the 135M model); null trains for `epochs`.",
    )
    lr: float = Field(2e-4, gt=0, description="Peak learning rate.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Warmup share of the steps.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decay (not on norms/biases).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Override the model's dropout.")
    kl_coef: float = Field(
        0.0, ge=0, description="Weight of KL(fine-tuned || base) on response tokens (0 = off)."
    )
    grad_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast on GPUs that support it, fp32 on CPU (measured faster "
        "than bf16 autocast even with AVX512-BF16); bf16 forces autocast.",
    )
    compile: bool = Field(False, description="torch.compile the model (GPU; CPU works too).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    eval_every: int = Field(8, ge=1, description="Steps between validation-loss evaluations.")
    save_every: int = Field(8, ge=1, description="Steps between checkpoints.")
    early_stopping_patience: int | None = Field(
        3, ge=1, description="Stop after this many evaluations without improvement."
    )
    max_train_rows: int | None = Field(None, ge=1, description="Use at most this many rows.")
    max_eval_rows: int | None = Field(64, ge=1, description="Validation rows for the loss.")
    seed: int = Field(0)
    use_augmented: bool = Field(True, description="Train on train_aug (else the plain split).")
    max_seconds: float | None = Field(
        None,
        gt=0,
        description="Stop after this much training wall time (model written as at the end); "
        "the learning-rate schedule then follows the elapsed share of it.",
    )
    num_processes: int = Field(
        1,
        ge=1,
        description="Processes on this node (GPUs, or CPU gloo workers); > 1 relaunches "
        "`sftops train` under torchrun.",
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="num_processes > 1: DDP (a model copy per process) or FSDP (sharded "
        "parameters, gradients and optimizer state); configs in infra/launch/.",
    )


class GenerationParams(Section):
    strategy: Literal["greedy", "beam", "sample"] = Field("greedy", description="Decoding.")
    max_new_tokens: int = Field(64, ge=1, description="Cap on new tokens per answer.")
    batch_size: int = Field(32, ge=1, description="Prompts per generate call.")
    num_beams: int = Field(4, ge=1, description="strategy=beam: beams.")
    length_penalty: float = Field(1.0, description="strategy=beam: >1 favours longer answers.")
    early_stopping: bool = Field(True, description="strategy=beam: stop when beams are done.")
    temperature: float = Field(0.7, gt=0, description="strategy=sample: softmax temperature.")
    top_p: float = Field(0.9, gt=0, le=1, description="strategy=sample: nucleus mass.")
    top_k: int = Field(50, ge=0, description="strategy=sample: top-k (0 = off).")
    repetition_penalty: float = Field(1.0, gt=0, description="1.0 = off.")
    seed: int = Field(0, description="strategy=sample: torch seed.")


class EvaluateParams(Section):
    generation: GenerationParams = Field(default_factory=GenerationParams)
    max_rows: int | None = Field(None, ge=1, description="Evaluate at most this many test rows.")
    compare_base: bool = Field(True, description="Also evaluate the base model.")
    bootstrap_resamples: int = Field(1000, ge=10, description="Paired bootstrap resamples.")
    human_eval_rows: int = Field(30, ge=0, description="Rows in the human-evaluation sheet.")
    engine: Literal["hf", "vllm"] = Field(
        "hf",
        description="Decoding engine: hf (transformers, any machine) or vllm (GPU; needs the "
        "vllm package).",
    )
    cache_answers: bool = Field(
        True,
        description="Reuse a model's answers from an earlier run when the model files, test "
        "prompts, generation params and engine are the same (kept in paths.cache_dir).",
    )
    label_aliases: dict[str, str] = Field(
        default_factory=lambda: {
            "正面": "positive",
            "负面": "negative",
            "体育": "sports",
            "政治": "politics",
            "科技": "technology",
            "财经": "business",
        },
        description="Words in generations that mean a label (e.g. Chinese label words).",
    )


class RegisterParams(Section):
    enabled: bool = Field(True, description="Log the run to MLflow and register the model.")
    model_name: str = Field("sftops-chat", description="Registered model name in MLflow.")
    experiment: str = Field("sftops", description="MLflow experiment of pipeline runs.")
    allow_unknown_lineage: bool = Field(
        False,
        description="Register even without git commit / dvc.lock data hashes (recorded as "
        "incomplete lineage).",
    )
    artifacts: list[str] = Field(
        default_factory=lambda: [
            "reports/evaluation.md",
            "reports/metrics.png",
            "reports/confusion_matrix.png",
            "reports/train_loss.png",
            "reports/predictions.jsonl",
            "reports/human_eval.csv",
            "reports/clean_report.md",
            "reports/augment_report.md",
        ],
        description="Files logged with the run (missing ones are skipped and listed).",
    )


class CheckpointsParams(Section):
    """Where training checkpoints go besides ``paths.checkpoints_dir``. Not a train-stage param:
    turning the mirror on or off does not change what training computes, so it reruns nothing."""

    remote: str | None = Field(
        None,
        description="DVC remote to mirror training checkpoints to as they are written, so a "
        "train stage retried on another machine resumes from the last one ('default': the "
        "project's default remote). null: $SFTOPS_CHECKPOINT_REMOTE when set, else local only.",
    )


class GateConfig(BaseModel):
    """Promotion rules, read by the pure gate ``sftops.mlops.promotion.should_promote``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    primary_metric: str = Field(
        "token_f1", description="Headline metric; it must improve (threshold 0 unless listed)."
    )
    min_improvement: dict[str, float] = Field(
        default_factory=lambda: {"token_f1": 0.0},
        description="Metric -> minimum improvement over the reference (strictly greater).",
    )
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {"exact_match": 0.02, "accuracy": 0.02},
        description="Guard metric -> largest allowed drop versus the reference.",
    )
    require_significant: bool = Field(
        True,
        description="Improvements also need the paired-bootstrap 95% CI of the difference > 0.",
    )
    require_same_test_set: bool = Field(
        True, description="Refuse to compare metrics computed on different test sets."
    )
    lower_is_better: list[str] = Field(
        default_factory=lambda: ["perplexity", "reference_nll"],
        description="Metrics where smaller values are better.",
    )
    skip_missing_guards: bool = Field(
        False,
        description="A guard metric absent from *both* models (e.g. accuracy on a test set "
        "without labelled rows) is skipped instead of blocking the promotion.",
    )

    @model_validator(mode="after")
    def _primary_is_a_rule(self) -> GateConfig:
        if self.primary_metric not in self.min_improvement:
            # Assignment validation would recurse; update the dict in place.
            self.min_improvement[self.primary_metric] = 0.0
        for metric, value in [*self.min_improvement.items(), *self.max_regression.items()]:
            if not math.isfinite(value):
                raise ValueError(f"threshold for {metric} must be a finite number")
        for metric, value in self.max_regression.items():
            if value < 0:
                raise ValueError(f"max_regression.{metric} must be ≥ 0")
        return self


class PromoteParams(GateConfig):
    """The promotion gate (see sftops.mlops.promotion) plus how the flow applies it."""

    require_approval: bool = Field(False, description="Pause the flow for a human decision.")
    approval_timeout_s: int = Field(3600, ge=1, description="How long the pause waits.")
    compare_champion: bool = Field(
        True,
        description="Evaluate the registry's champion on the same test rows, so the gate has "
        "paired confidence intervals against it.",
    )


class Params(Section):
    """Everything a run needs; one section per stage."""

    paths: PathsParams = Field(default_factory=PathsParams)
    ingest: IngestParams = Field(default_factory=IngestParams)
    clean: CleanParams = Field(default_factory=CleanParams)
    validate_: ValidateParams = Field(
        default_factory=ValidateParams,
        alias="validate",
        description="Schema validation.",
    )
    split: SplitParams = Field(default_factory=SplitParams)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    train: TrainParams = Field(default_factory=TrainParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    register_: RegisterParams = Field(
        default_factory=RegisterParams, alias="register", description="MLflow registry."
    )
    promote: PromoteParams = Field(default_factory=PromoteParams)
    checkpoints: CheckpointsParams = Field(default_factory=CheckpointsParams)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def rooted(self, root: str | Path) -> Params:
        """The same params with every ``paths`` entry under ``root`` (a run's workspace), for
        code that reads a workspace without changing the process's current folder.

        >>> Params().rooted("/ws").paths.model_dir
        '/ws/models/sft'
        """
        moved = {k: str(Path(root) / v) for k, v in self.paths.model_dump().items()}
        return self.model_copy(update={"paths": PathsParams(**moved)})


def _describe(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def parse_params(raw: dict[str, Any], origin: str = "params.yaml") -> Params:
    """Validate a params mapping; a problem becomes one ConfigError line naming the key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(
            _describe(dict(first)) + more, file=origin, key=_location(tuple(first["loc"]))
        ) from None


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``{"clean.min_output_chars": 3}``) in a nested mapping, returning a copy.

    >>> apply_overrides({"a": {"b": 1}}, {"a.b": 2, "a.c": 3})
    {'a': {'b': 2, 'c': 3}}
    """
    import copy

    result = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = result
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError("cannot set a key inside a non-mapping value", key=dotted)
        node[leaf] = value
    return result


def load_params(
    path: str | Path = DEFAULT_PARAMS_FILE, overrides: dict[str, Any] | None = None
) -> Params:
    """Read params.yaml (embedded defaults if the file does not exist) and apply overrides."""
    path = Path(path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            row = mark.line + 1 if mark is not None else None
            raise ConfigError(
                f"not valid YAML ({getattr(err, 'problem', err)})", file=path, row=row
            ) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("top level must be a mapping of sections", file=path)
        raw = loaded or {}
    if overrides:
        raw = apply_overrides(raw, overrides)
    return parse_params(raw, origin=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """``"clean.max_chars=500"`` -> ``("clean.max_chars", 500)`` with the value read as YAML.

    >>> parse_override("split.test=0.2")
    ('split.test', 0.2)
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    return key.strip(), yaml.safe_load(value)
