"""Serve the flows as deployments from this process (`python -m flows.deploy`).

- ``retrain/nightly``: cron ``0 2 * * *`` (UTC) by default; ``--cron`` / ``SFTOPS_RETRAIN_CRON``
  change it, ``--no-schedule`` (or an empty cron) serves it for manual runs only. Each run
  executes in its own workspace, so runs overlap safely: deployment concurrency
  ``SFTOPS_RUN_CONCURRENCY`` (default 2: the nightly and a UI custom run together) with strategy
  ENQUEUE, so a third trigger waits in the queue until one finishes (a machine-size limit, not a
  correctness one);
- ``data_refresh/manual``, ``evaluate_model/manual``, ``promote/manual``,
  ``ablate_augment/manual``: triggered from the UI or ``prefect deployment run``.

The deployments are the ``process`` rows of the table in ``sftops/stack/deployments.py``, from
which ``infra/prefect.yaml`` (the same for a process work pool) is generated.
Needs ``PREFECT_API_URL`` pointing at a Prefect server (``sftops ui`` starts one and this
process); runs execute as subprocesses in the current directory (the repository root).
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from sftops.stack.deployments import DEFAULT_CRON, Deployment, of_pool

SERVE_LIMIT = 4  # concurrent runs of this process in all (a paused promote holds one)


def load_flow(entrypoint: str) -> Any:
    """The flow object of ``flows/retrain.py:retrain`` (importing it is the slow part)."""
    path, function = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)


def to_deployment(d: Deployment, cron: str | None, timezone: str) -> Any:
    """The RunnerDeployment of one row; ``cron`` replaces the row's schedule when it has one
    (``None``: served for manual runs only)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    limit = d.concurrency_limit(os.environ)
    schedule = cron if d.cron else None
    return load_flow(d.entrypoint).to_deployment(
        name=d.name,
        schedules=[Cron(schedule, timezone=timezone)] if schedule else None,
        concurrency_limit=None
        if limit is None
        else ConcurrencyLimitConfig(
            limit=limit, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        description=d.description,
        tags=list(d.tags),
    )


def deployments(cron: str | None = DEFAULT_CRON, timezone: str = "UTC") -> list[Any]:
    """The RunnerDeployments served by :func:`main`: the table's ``process`` deployments."""
    return [to_deployment(d, cron, timezone) for d in of_pool("process")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.deploy", description=__doc__)
    parser.add_argument(
        "--cron",
        default=os.environ.get("SFTOPS_RETRAIN_CRON", DEFAULT_CRON),
        help="cron of retrain/nightly (default %(default)s; '' = no schedule)",
    )
    parser.add_argument("--timezone", default=os.environ.get("SFTOPS_TIMEZONE", "UTC"))
    parser.add_argument("--no-schedule", action="store_true", help="manual runs only")
    parser.add_argument("--limit", type=int, default=SERVE_LIMIT, help="concurrent runs in all")
    args = parser.parse_args(argv)

    from prefect import serve

    cron = None if args.no_schedule or not args.cron.strip() else args.cron.strip()
    serve(*deployments(cron, args.timezone), limit=args.limit)


if __name__ == "__main__":
    main()
