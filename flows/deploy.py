"""Serve the flows as deployments from this process (`python -m flows.deploy`).

- ``retrain/nightly``: cron ``0 2 * * *`` (UTC) by default; ``--cron`` / ``SFTOPS_RETRAIN_CRON``
  change it, ``--no-schedule`` (or an empty cron) serves it for manual runs only. Each run
  executes in its own workspace, so runs overlap safely: deployment concurrency
  ``SFTOPS_RUN_CONCURRENCY`` (default 2: the nightly and a UI custom run together) with strategy
  ENQUEUE, so a third trigger waits in the queue until one finishes (a machine-size limit, not a
  correctness one);
- ``data_refresh/manual``, ``evaluate_model/manual``, ``promote/manual``,
  ``ablate_augment/manual``: triggered from the UI or ``prefect deployment run``.

Needs ``PREFECT_API_URL`` pointing at a Prefect server (``sftops ui`` starts one and this
process); runs execute as subprocesses in the current directory (the repository root).
``infra/prefect.yaml`` declares the same deployments for a process work pool instead.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

DEFAULT_CRON = "0 2 * * *"
SERVE_LIMIT = 4  # concurrent runs of this process in all (a paused promote holds one)
RUN_CONCURRENCY = int(os.environ.get("SFTOPS_RUN_CONCURRENCY", "2"))  # per deployment


def deployments(
    cron: str | None = DEFAULT_CRON, timezone: str = "UTC", name: str = "nightly"
) -> list[Any]:
    """The RunnerDeployments served by :func:`main` (importing the flows is the slow part)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.ablate import ablate_augment
    from flows.data_refresh import data_refresh
    from flows.evaluate_model import evaluate_model
    from flows.promote import promote
    from flows.retrain import retrain

    queued = ConcurrencyLimitConfig(
        limit=RUN_CONCURRENCY, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
    )
    return [
        retrain.to_deployment(
            name=name,
            schedules=[Cron(cron, timezone=timezone)] if cron else None,
            concurrency_limit=queued,
            description="Data stages, fine-tuning, evaluation, registration, gated promotion.",
            tags=["sftops"],
        ),
        data_refresh.to_deployment(
            name="manual",
            concurrency_limit=queued,
            description="Ingest, clean, validate, split, augment.",
            tags=["sftops"],
        ),
        evaluate_model.to_deployment(
            name="manual",
            description="Evaluate a registered version or alias on the current test split.",
            tags=["sftops"],
        ),
        promote.to_deployment(
            name="manual",
            description="Gate a registered version; optionally pause for a reviewer.",
            tags=["sftops"],
        ),
        ablate_augment.to_deployment(
            name="manual",
            concurrency_limit=ConcurrencyLimitConfig(  # two trainings: one ablation at a time
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
            description="Train with and without augmentation (same seed and steps); "
            "paired bootstrap of the primary metric and the loss.",
            tags=["sftops"],
        ),
    ]


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
