"""`sftops stack up | down | status`: the team stack from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sftops.errors import SftopsError

stack_app = typer.Typer(
    help="Team setup on this server: PostgreSQL, object store, Prefect and MLflow servers, "
    "a Prefect worker (see infra/README.md).",
    no_args_is_help=True,
)
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Folder for pids, logs and data (default .stack/)."),
]


@stack_app.command("up")
def stack_up(
    host: Annotated[
        str, typer.Option(help="Interface the Prefect and MLflow servers bind (needs auth).")
    ] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="Flow runs the worker runs at once.")] = 2,
    state_dir: StateDirOption = None,
) -> None:
    """Start what is not running (installs what is missing); prints URLs."""
    from sftops.stack.team import Stack

    try:
        Stack(Path.cwd(), state_dir).up(host=host, workers=workers)
    except SftopsError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


@stack_app.command("down")
def stack_down(state_dir: StateDirOption = None) -> None:
    """Stop everything `stack up` started (worker first, PostgreSQL last), nothing else."""
    from sftops.stack.team import Stack

    Stack(Path.cwd(), state_dir).down()


@stack_app.command("status")
def stack_status(state_dir: StateDirOption = None) -> None:
    """URLs and health of each service; exit 1 when one is down."""
    from sftops.stack.team import Stack

    stack = Stack(Path.cwd(), state_dir)
    health = stack.health()
    for name, word in health.items():
        typer.echo(f"{name:15} {word}")
    if stack.state.ports:
        typer.echo(stack.describe())
    if any(word != "ok" for word in health.values()):
        raise typer.Exit(code=1)
