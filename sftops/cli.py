"""`sftops` command line: one command per stage, `run` for the whole chain.

Heavy libraries are imported inside the commands so that `sftops --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sftops.errors import SftopsError
from sftops.mlops.pipeline import DATA_STAGES, STAGES, run_in_workspace, stage_function

app = typer.Typer(
    help="sftops: instruction-tuning pipeline "
    "(ingest -> clean -> validate -> split -> augment -> train -> evaluate).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("sftops")

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="Params file (embedded defaults if missing).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a param, e.g. --set clean.max_chars=4000."),
]


def _setup_logging() -> None:
    if log.handlers:
        return
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
    else:  # a pipe or a file (DVC stages, workers, CI): one line per record, never wrapped
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    # a library calling logging.info() configures the root logger on the fly; without this
    # every later line would print twice
    log.propagate = False


def parse_override(text: str) -> tuple[str, Any]:
    from sftops.config import parse_override as parse

    return parse(text)


def _load(params_file: Path, overrides: list[str] | None) -> Any:
    from sftops.config import load_params

    return load_params(params_file, dict(parse_override(o) for o in overrides or []))


def _fail(err: SftopsError) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _run_stage(name: str, params_file: Path, overrides: list[str] | None) -> None:
    _setup_logging()
    try:
        params = _load(params_file, overrides)
        started = time.perf_counter()
        summary = stage_function(name)(params)
    except SftopsError as err:
        _fail(err)
        return
    brief = {k: v for k, v in summary.items() if not isinstance(v, dict | list)}
    log.info("%s done in %.1fs: %s", name, time.perf_counter() - started, json.dumps(brief))


DATA_STAGE_HELP = {
    "ingest": "Read every source in params (Alpaca JSON/JSONL, ShareGPT/OpenAI messages, CSV, "
    "Parquet, datasets folder) into the canonical table; unreadable rows go to quarantine.",
    "clean": "Normalise, strip HTML, scrub PII, filter, and drop exact / near duplicates.",
    "validate": "Check the cleaned table against its pandera schema; quarantine failing rows.",
    "split": "Write train / validation / test splits, assigned by hash of the near-dup cluster.",
    "augment": "Add synonym-replacement and back-translation variants of train prompts, "
    "filtered by embedding similarity; validation and test rows are never touched.",
}


def _add_stage_command(name: str, help_text: str) -> None:
    def command(params: ParamsOption = Path("params.yaml"), set_: SetOption = None) -> None:
        _run_stage(name, params, set_)

    app.command(name, help=help_text)(command)


for _name, _help in DATA_STAGE_HELP.items():
    _add_stage_command(_name, _help)


@app.command("train")
def train_command(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
) -> None:
    """Fine-tune the base model on the (augmented) train split; checkpoints are resumable."""
    _setup_logging()
    try:
        from sftops.mlops.checkpoints import mirrored_checkpoints
        from sftops.modeling.train import run_train
        from sftops.reporting import TrainSummary, view

        loaded = _load(params, set_)
        with mirrored_checkpoints(loaded) as resumable:
            summary = view(TrainSummary, "train", run_train(loaded, resume=resume or resumable))
    except SftopsError as err:
        _fail(err)
        return
    log.info(
        "train done: validation loss %.4f (base) -> %.4f (best), %d steps, %.0f tok/s",
        summary.base_val_loss,
        summary.best_val_loss,
        summary.steps,
        summary.tokens_per_second,
    )


@app.command("evaluate")
def evaluate_command(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    model: Annotated[
        Path | None, typer.Option(help="Candidate model folder (default: paths.model_dir).")
    ] = None,
) -> None:
    """Base vs candidate (vs champion) on the test split: BLEU/chrF/ROUGE-L/EM/F1, accuracy and
    macro-F1 on labelled rows, perplexity, paired-bootstrap CIs, predictions and plots."""
    _setup_logging()
    try:
        from sftops.evaluation.report import run_evaluate

        metrics = run_evaluate(_load(params, set_), model)
    except SftopsError as err:
        _fail(err)
        return
    from rich.console import Console

    from sftops.evaluation.report import summary_markdown

    Console().print(summary_markdown(metrics))


@app.command()
def register(params: ParamsOption = Path("params.yaml"), set_: SetOption = None) -> None:
    """Log this pipeline run to MLflow (params, curves, metrics, plots, lineage: git commit,
    dvc.lock hashes) and register the model; the new version gets alias `challenger`."""
    _setup_logging()
    try:
        from sftops.mlops.release import run_register

        out = run_register(_load(params, set_))
    except SftopsError as err:
        _fail(err)
        return
    typer.echo(
        f"registered {out['model_name']} version {out['version']} "
        f"(run {out['run_id']}, {out['tracking_uri']})"
    )


@app.command()
def promote(
    version: Annotated[str, typer.Option(help="Model version to gate or promote.")],
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Promote by hand, bypassing the metric gate, with this "
            "reason (recorded on the version)."
        ),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who decided (recorded).")] = None,
) -> None:
    """Move alias `champion` to a version if the metric gate passes (or by hand with --reason)."""
    _setup_logging()
    try:
        from sftops.mlops.release import run_promote

        out = run_promote(_load(params, set_), version, force_reason=reason, approved_by=by)
    except SftopsError as err:
        _fail(err)
        return
    verdict = "promoted to champion" if out["promoted"] else "not promoted"
    typer.echo(f"{out['model_name']} version {version}: {verdict}")
    for line in out["reasons"]:
        typer.echo(f"  - {line}")
    if not out["promoted"]:
        raise typer.Exit(code=3)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded on both versions).")],
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
) -> None:
    """Move alias `champion` back to the previous champion."""
    _setup_logging()
    try:
        from sftops.mlops.release import run_rollback

        out = run_rollback(_load(params, set_), reason)
    except SftopsError as err:
        _fail(err)
        return
    typer.echo(f"{out['model_name']}: champion is version {out['champion']} again")


@app.command()
def reproduce(
    ref: Annotated[
        str, typer.Argument(help="DVC experiment name, or the MLflow run id of a pipeline run.")
    ],
) -> None:
    """Bring a run back into this checkout: `dvc exp apply` of its DVC experiment (params,
    dvc.lock, reports and model from the cache). Runs logged before experiments existed: their
    commit's dvc.lock, dvc.yaml and params.yaml, then their outputs from the cache or remote."""
    _setup_logging()
    try:
        from sftops.mlops.versioning import apply_experiment, experiment_exists, restore_run

        if experiment_exists(ref):
            apply_experiment(ref)
            typer.echo(f"applied DVC experiment {ref}: its params, dvc.lock and outputs are here")
            return
        from sftops.mlops.registry import run_lineage

        lineage = run_lineage(ref)
        experiment = lineage.get("dvc.experiment")
        if experiment and experiment_exists(experiment):
            apply_experiment(experiment)
            typer.echo(f"applied DVC experiment {experiment} of MLflow run {ref}")
            return
        commit = lineage.get("git.commit", "unknown")
        if commit == "unknown":
            raise SftopsError(f"run {ref} has neither a DVC experiment nor a git commit")
        targets = [
            lineage[k]
            for k in ("dvc.train_data", "dvc.test_data", "dvc.model")
            if lineage.get(f"{k}_md5", "unknown") != "unknown"
        ]
        restored = restore_run(commit, targets)
    except SftopsError as err:
        _fail(err)
        return
    typer.echo(f"restored {len(restored)} DVC outputs of run {ref} (commit {commit[:12]})")
    for name in restored:
        typer.echo(f"  {name}")
    typer.echo(f"code of that run: git checkout {commit}")


@app.command("ui")
def ui_command(
    prefect_port: Annotated[int, typer.Option(help="Prefect server (UI + API) port.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port (0: do not start it).")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    cron: Annotated[
        str | None, typer.Option(help="Cron of retrain/nightly ('' = manual runs only).")
    ] = None,
) -> None:
    """Start the Prefect server, the serve process (flows/deploy.py) and the MLflow UI on the
    project's store; print their URLs; Ctrl-C stops them (serve first)."""
    from sftops.stack.ui import run_foreground

    try:
        run_foreground(
            Path.cwd(),
            prefect_port=prefect_port,
            mlflow_port=mlflow_port or None,
            host=host,
            serve_args=None if cron is None else ["--cron", cron],
        )
    except SftopsError as err:
        _fail(err)


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model folder, built-in name or models:/<name>@<alias> (default: the registry's "
        "champion; the local paths.model_dir only when there is none).",
    ),
]


CHAT_MAX_NEW_TOKENS = 256
MaxNewTokensOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Answer length cap when a request sets no max_tokens. Decoding is otherwise "
        "evaluate.generation's, whose own cap fits the test split's short answers.",
    ),
]


def _chat_generation(params: Any, max_new_tokens: int) -> Any:
    """Evaluation's decoding settings (served answers look like evaluated ones) with a chat's
    length cap."""
    return params.evaluate.generation.model_copy(update={"max_new_tokens": max_new_tokens})


@app.command("serve")
def serve_command(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    model: ModelOption = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    poll_seconds: Annotated[
        float, typer.Option(help="Check for a new model version every N seconds (0: never).")
    ] = 30.0,
    max_batch: Annotated[
        int,
        typer.Option(min=1, help="Concurrent requests generated as one batch (1: one at a time)."),
    ] = 32,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Refuse request bodies over this many bytes (413).")
    ] = 4 * 1024 * 1024,
    max_new_tokens: MaxNewTokensOption = CHAT_MAX_NEW_TOKENS,
) -> None:
    """OpenAI-compatible chat server (POST /v1/chat/completions, GET /health); reloads when
    the champion alias moves."""
    _setup_logging()
    try:
        from sftops.serving.runner import serve

        loaded = _load(params, set_)
        source = _model_source(model, loaded)
        serve(
            source,
            host,
            port,
            poll_seconds,
            params=_chat_generation(loaded, max_new_tokens),
            max_batch=max_batch,
            max_body_bytes=max_body_bytes,
        )
    except SftopsError as err:
        _fail(err)
    except KeyboardInterrupt:
        pass


def _model_source(model: str | None, params: Any) -> Any:
    """``--model`` when given, else the registry's champion (the local model only without one)."""
    from sftops.serving.sources import default_source

    reg, paths = params.register_, params.paths
    return default_source(model, reg.model_name, paths.model_dir, paths.cache_dir)


@app.command("chat")
def chat_command(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    model: ModelOption = None,
    system: Annotated[str | None, typer.Option(help="System message for the chat.")] = None,
    max_new_tokens: MaxNewTokensOption = CHAT_MAX_NEW_TOKENS,
) -> None:
    """Chat with a model in the terminal: streamed tokens, multi-turn; /reset, /exit."""
    _setup_logging()
    try:
        from sftops.serving.chat import chat_repl

        loaded = _load(params, set_)
        source = _model_source(model, loaded)
        chat_repl(source, _chat_generation(loaded, max_new_tokens), system=system)
    except SftopsError as err:
        _fail(err)


@app.command()
def run(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    prefect: Annotated[
        bool, typer.Option(help="Run through the Prefect `retrain` flow (else in-process).")
    ] = True,
    train: Annotated[bool, typer.Option(help="Include the model stages (train, evaluate).")] = True,
) -> None:
    """Run every stage in order, through Prefect by default, in the run's own workspace (a git
    worktree of this checkout): --set overrides apply there only, each stage runs via
    `dvc repro` (unchanged stages come from the DVC cache) and the run is saved as a DVC
    experiment (`dvc exp show`, `dvc exp apply <name>`). This checkout is not modified."""
    if not prefect:
        _setup_logging()  # under Prefect, its own handler shows the sftops logs
    try:
        overrides = dict(parse_override(o) for o in set_ or [])
        if prefect:
            from flows.data_refresh import data_refresh
            from flows.retrain import retrain
            from sftops.mlops.workspace import project_root
            from sftops.stack.run_api import prefect_api_for_run

            with prefect_api_for_run(project_root(Path.cwd()) / ".sftops" / "logs"):
                flow = retrain if train else data_refresh
                summaries = flow(params_file=str(params), overrides=overrides)
        else:
            summaries = run_in_workspace(params, overrides, STAGES if train else DATA_STAGES)
        loaded = _load(params, set_)
    except SftopsError as err:
        _fail(err)
        return
    except KeyboardInterrupt:  # Ctrl-C, or a cancel through the Prefect API
        from sftops.mlops.prefect_api import interrupted

        typer.secho(interrupted(), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=130) from None
    except Exception as err:
        from sftops.mlops.prefect_api import unreachable

        if not prefect or (outage := unreachable(err)) is None:
            raise
        _fail(outage)
        return
    from sftops.reporting import print_run_summary

    print_run_summary(summaries, loaded)


ablate_app = typer.Typer(help="Ablations: train with and without a pipeline feature, compare.")
app.add_typer(ablate_app, name="ablate")


@ablate_app.command("augment")
def ablate_augment_command(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = None,
    name: Annotated[str, typer.Option(help="Setting name (file name of the result).")] = "default",
    train_rows: Annotated[
        int | None, typer.Option(help="Train rows per arm before augmentation (by hash).")
    ] = None,
    test_rows: Annotated[int | None, typer.Option(help="At most this many test rows.")] = None,
    test_unused_train: Annotated[
        bool,
        typer.Option(
            help="Also test on the train rows this setting does not train on (no shared "
            "near-dup cluster): more test rows, a narrower CI."
        ),
    ] = False,
    seeds: Annotated[
        int, typer.Option(min=1, help="Train each arm under this many seeds; average per row.")
    ] = 1,
    task: Annotated[
        list[str] | None, typer.Option(help="Only rows of this task (repeatable).")
    ] = None,
    lang: Annotated[
        list[str] | None, typer.Option(help="Only rows of this language (repeatable).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Result folder (default reports/ablation).")
    ] = None,
    mlflow: Annotated[bool, typer.Option(help="Log the comparison to MLflow.")] = True,
) -> None:
    """Train with and without augmentation (same seed, steps, test rows); print the paired-
    bootstrap difference of the primary metric and the loss."""
    _setup_logging()
    try:
        from sftops.mlops.ablation import AblationSetting, run_ablation, table_markdown

        setting = AblationSetting(
            name=name,
            train_rows=train_rows,
            test_rows=test_rows,
            test_unused_train=test_unused_train,
            seeds=seeds,
            tasks=tuple(task or ()),
            languages=tuple(lang or ()),
        )
        summary = run_ablation(_load(params, set_), setting, out, mlflow=mlflow)
    except SftopsError as err:
        _fail(err)
        return
    typer.echo(table_markdown([summary]))


from sftops.stack.commands import stack_app  # noqa: E402 (after the app's own commands)

app.add_typer(stack_app, name="stack")


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except SftopsError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
