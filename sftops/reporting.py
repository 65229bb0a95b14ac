"""Stage summaries as the terminal and Prefect artifacts show them.

Each stage edge returns a JSON-able summary dict (also written to its report file). The typed
views below pick the fields a run summary shows, so a renamed key fails here, naming the stage
and the key, instead of deep inside a table renderer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sftops.errors import SftopsError

T = TypeVar("T")


def summary_markdown(title: str, summary: dict[str, Any]) -> str:
    """A title and a two-column table; nested values are shown as compact JSON.

    >>> print(summary_markdown("T", {"rows": 3, "by": {"a": 1}}))
    # T
    <BLANKLINE>
    | key | value |
    |---|---|
    | rows | 3 |
    | by | {"a": 1} |
    <BLANKLINE>
    """
    lines = [f"# {title}", "", "| key | value |", "|---|---|"]
    for key, value in summary.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines) + "\n"


def view(cls: type[T], stage: str, summary: Mapping[str, Any]) -> T:
    """The dataclass ``cls`` filled from the same-named keys of ``summary``.

    >>> view(IngestSummary, "ingest", {"rows_read": 3, "rows_ingested": 2, "rows_quarantined": 1})
    IngestSummary(rows_read=3, rows_ingested=2, rows_quarantined=1)
    >>> view(IngestSummary, "ingest", {"rows_read": 3})
    Traceback (most recent call last):
    sftops.errors.SftopsError: ingest summary has no 'rows_ingested'
    """
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in summary:
            if field.default is not dataclasses.MISSING:
                continue
            raise SftopsError(f"{stage} summary has no {field.name!r}")
        values[field.name] = summary[field.name]
    return cls(**values)


@dataclass(frozen=True)
class StageLine:
    """One row of the run table: what went in, what came out, what was set aside."""

    stage: str
    rows_in: str
    rows_out: str
    set_aside: str


@dataclass(frozen=True)
class IngestSummary:
    rows_read: int
    rows_ingested: int
    rows_quarantined: int

    def line(self) -> StageLine:
        return StageLine(
            "ingest", str(self.rows_read), str(self.rows_ingested), str(self.rows_quarantined)
        )


@dataclass(frozen=True)
class CleanSummary:
    rows_in: int
    rows_kept: int
    rows_quarantined: int

    def line(self) -> StageLine:
        return StageLine(
            "clean", str(self.rows_in), str(self.rows_kept), str(self.rows_quarantined)
        )


@dataclass(frozen=True)
class ValidateSummary:
    rows_in: int
    rows_valid: int
    rows_quarantined: int

    def line(self) -> StageLine:
        return StageLine(
            "validate", str(self.rows_in), str(self.rows_valid), str(self.rows_quarantined)
        )


@dataclass(frozen=True)
class SplitSummary:
    rows: int
    rows_by_split: dict[str, int]

    def line(self) -> StageLine:
        by_split = ", ".join(f"{k} {v}" for k, v in self.rows_by_split.items())
        return StageLine("split", str(self.rows), by_split, "0")


@dataclass(frozen=True)
class AugmentSummary:
    rows_original: int
    rows_out: int
    rows_added: int
    methods: dict[str, dict[str, Any]]

    def line(self) -> StageLine:
        rejected = sum(sum(m["rejected_by_reason"].values()) for m in self.methods.values())
        out = f"train_aug {self.rows_out} (+{self.rows_added})"
        return StageLine("augment", str(self.rows_original), out, str(rejected))


@dataclass(frozen=True)
class TrainSummary:
    encoding: dict[str, Any]
    base_val_loss: float
    best_val_loss: float
    steps: int
    tokens_per_second: float

    def line(self) -> StageLine:
        out = f"val loss {self.base_val_loss:.3f} -> {self.best_val_loss:.3f} ({self.steps} steps)"
        return StageLine(
            "train",
            f"{self.encoding['rows']} rows",
            out,
            str(self.encoding["dropped_no_answer"]),
        )


@dataclass(frozen=True)
class EvaluateSummary:
    test_rows: int
    models: dict[str, dict[str, Any]]

    def line(self) -> StageLine:
        cells = ", ".join(f"{name} F1 {m['token_f1']:.3f}" for name, m in self.models.items())
        return StageLine("evaluate", str(self.test_rows), cells, "-")


@dataclass(frozen=True)
class RegisterSummary:
    model_name: str
    version: str | int
    run_id: str | None = None
    tracking_uri: str = ""
    already_registered: bool = False


@dataclass(frozen=True)
class PromoteSummary:
    model_name: str
    version: str | int
    promoted: bool


DATA_VIEWS: dict[str, type[Any]] = {
    "ingest": IngestSummary,
    "clean": CleanSummary,
    "validate": ValidateSummary,
    "split": SplitSummary,
    "augment": AugmentSummary,
}


@dataclass(frozen=True)
class RunSummary:
    """What a run did, stage by stage (the model stages only when the run included them)."""

    data: list[Any]
    train: TrainSummary | None = None
    evaluate: EvaluateSummary | None = None
    register: RegisterSummary | None = None
    promote: PromoteSummary | None = None
    experiment: str | None = None

    @classmethod
    def of(cls, summaries: Mapping[str, Mapping[str, Any]]) -> RunSummary:
        def optional(stage: str, kind: type[T]) -> T | None:
            return view(kind, stage, summaries[stage]) if stage in summaries else None

        return cls(
            data=[view(kind, stage, summaries[stage]) for stage, kind in DATA_VIEWS.items()],
            train=optional("train", TrainSummary),
            evaluate=optional("evaluate", EvaluateSummary),
            register=optional("register", RegisterSummary),
            promote=optional("promote", PromoteSummary),
            experiment=summaries.get("experiment", {}).get("dvc.experiment"),
        )

    def lines(self) -> list[StageLine]:
        lines = [stage.line() for stage in self.data]
        lines += [s.line() for s in (self.train, self.evaluate) if s is not None]
        if self.promote is not None:
            p = self.promote
            verdict = "champion" if p.promoted else "not promoted (see reasons on the version)"
            lines.append(StageLine("register", "-", f"{p.model_name} v{p.version}: {verdict}", "-"))
        elif self.register is not None and self.register.already_registered:
            r = self.register
            out = f"unchanged: already {r.model_name} v{r.version}"
            lines.append(StageLine("register", "-", out, "-"))
        return lines


def print_run_summary(summaries: dict[str, dict[str, Any]], params: Any) -> None:
    """The end-of-run table: each stage's rows, the metrics, the experiment, the registry."""
    from rich.console import Console
    from rich.table import Table

    run = RunSummary.of(summaries)
    table = Table(title="sftops data stages")
    for column, justify in (
        ("stage", "left"),
        ("rows in", "right"),
        ("rows out", "right"),
        ("quarantined", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for line in run.lines():
        table.add_row(line.stage, line.rows_in, line.rows_out, line.set_aside)
    console = Console()
    console.print(table)
    if run.evaluate is not None:
        console.print(metrics_table(summaries["evaluate"]))
    if run.experiment:
        console.print(
            f"DVC experiment {run.experiment}: `dvc exp show` lists it; "
            f"`dvc exp apply {run.experiment}` puts its params, reports "
            f"({params.paths.reports_dir}/), quarantine and model into this checkout"
        )
    else:
        console.print(
            f"Reports: {params.paths.reports_dir}/ (evaluation.md, metrics.png)  "
            f"quarantine: {params.paths.quarantine_dir}/  model: {params.paths.model_dir}/"
        )
    reg = run.register
    if reg is not None and reg.run_id:
        promoted = run.promote is not None and run.promote.promoted
        aliases = "challenger" + (", champion" if promoted else "")
        console.print(
            f"MLflow run {reg.run_id} in experiment {params.register_.experiment} "
            f"({reg.tracking_uri}); model {reg.model_name} version {reg.version}, "
            f"aliases: {aliases}"
        )
        if reg.tracking_uri.startswith("sqlite"):
            console.print(
                f"See it: mlflow ui --backend-store-uri {reg.tracking_uri} --port 5000, then "
                "http://127.0.0.1:5000 (or `sftops ui` for Prefect + MLflow)"
            )


def metrics_table(metrics: dict[str, Any]) -> Any:
    from rich.table import Table

    columns = ["token_f1", "exact_match", "chrf", "rouge_l", "bleu", "accuracy", "perplexity"]
    table = Table(title=f"evaluation on {metrics['test_rows']} test rows")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in metrics["models"].items():
        table.add_row(
            name,
            *(
                f"{values[c]:.3f}" if isinstance(values.get(c), int | float) else "-"
                for c in columns
            ),
        )
    return table


def cpu_model() -> str:
    """The CPU's model name, for the machine line of a bench result."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"
