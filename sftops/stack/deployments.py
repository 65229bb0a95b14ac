"""The Prefect deployments, declared once: :data:`DEPLOYMENTS`.

- ``flows/deploy.py`` serves the ``process`` ones from one process (`sftops ui`);
- ``infra/prefect.yaml``'s ``deployments:`` section is generated from this table
  (``python -m sftops.stack.deployments --write``; ``--check`` and a test fail when the file and
  the table disagree); `sftops stack up` deploys the ``process`` ones from that file to a worker's
  process pool, compose and Kubernetes the others;
- the stacks wait for / check the deployments they start by the names listed here.

The table holds strings only (entrypoints, not flow objects): ``sftops`` never imports
``flows/``, and importing the flows is the slow part of serving.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Pool = Literal["process", "gpu", "k8s-gpu", "k8s-cpu"]
# each pool's anchor among the hand-written definitions of infra/prefect.yaml
POOL_ANCHORS: dict[Pool, str] = {
    "process": "pool",
    "gpu": "gpu_pool",
    "k8s-gpu": "k8s_gpu_pool",
    "k8s-cpu": "k8s_cpu_pool",
}
# pool -> its work pool name and queue (what the anchors of infra/prefect.yaml must say)
POOL_TARGETS: dict[Pool, tuple[str, str]] = {
    "process": ("sftops", "default"),
    "gpu": ("sftops-gpu", "default"),
    "k8s-gpu": ("sftops-k8s", "gpu"),
    "k8s-cpu": ("sftops-k8s", "cpu"),
}
DEFAULT_CRON = "0 2 * * *"
RUN_CONCURRENCY_ENV = "SFTOPS_RUN_CONCURRENCY"
RUN_CONCURRENCY_DEFAULT = 2
PREFECT_YAML = Path("infra") / "prefect.yaml"
MARKER = "deployments:"
GENERATED_NOTE = (
    "  # Generated from sftops/stack/deployments.py (python -m sftops.stack.deployments --write):\n"
    "  # edit the table there, not the entries below.\n"
)


@dataclass(frozen=True)
class Deployment:
    flow: str  # the entrypoint's @flow(name=...)
    name: str
    entrypoint: str  # path/to/file.py:function, relative to the repository root
    description: str
    pool: Pool = "process"
    # a collision-ENQUEUE limit; "runs": runs each in their own workspace may overlap, as
    # many as SFTOPS_RUN_CONCURRENCY (default 2: the nightly and a UI custom run together)
    concurrency: int | Literal["runs"] | None = None
    cron: str | None = None  # UTC
    tags: tuple[str, ...] = ("sftops",)

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"

    def concurrency_limit(self, env: Mapping[str, str] | None = None) -> int | None:
        """
        >>> d = Deployment("f", "n", "f.py:f", "", concurrency="runs")
        >>> d.concurrency_limit({}), d.concurrency_limit({"SFTOPS_RUN_CONCURRENCY": "3"})
        (2, 3)
        """
        if self.concurrency != "runs":
            return self.concurrency
        raw = (env or {}).get(RUN_CONCURRENCY_ENV) or str(RUN_CONCURRENCY_DEFAULT)
        return int(raw)


_RETRAIN = "Data stages, fine-tuning, evaluation, registration, gated promotion."
_DATA = "Ingest, clean, validate, split, augment."
_EVALUATE = "Evaluate a registered version or alias on the current test split."
DEPLOYMENTS: tuple[Deployment, ...] = (
    # process pool (`sftops ui` serves these; `sftops stack up` deploys them to its worker)
    Deployment(
        "retrain", "nightly", "flows/retrain.py:retrain", _RETRAIN, concurrency="runs",
        cron=DEFAULT_CRON,
    ),
    Deployment(
        "data_refresh", "manual", "flows/data_refresh.py:data_refresh", _DATA, concurrency="runs"
    ),
    Deployment("evaluate_model", "manual", "flows/evaluate_model.py:evaluate_model", _EVALUATE),
    Deployment(
        "promote", "manual", "flows/promote.py:promote",
        "Gate a registered version; optionally pause for a reviewer.",
    ),
    Deployment(
        "ablate_augment", "manual", "flows/ablate.py:ablate_augment",
        "Train with and without augmentation (same seed and steps); paired bootstrap of the "
        "primary metric and the loss.",
        concurrency=1,  # two trainings: one ablation at a time
    ),
    # Kubernetes pool: one pod per flow run; training and evaluation on GPU nodes
    Deployment(
        "retrain", "k8s-gpu", "flows/retrain.py:retrain",
        "Retrain on a GPU node of the cluster (one pod per flow run).",
        pool="k8s-gpu", concurrency=1, tags=("sftops", "k8s"),
    ),
    Deployment(
        "data_refresh", "k8s", "flows/data_refresh.py:data_refresh",
        "Data stages on a CPU node of the cluster.",
        pool="k8s-cpu", concurrency=1, tags=("sftops", "k8s"),
    ),
    Deployment(
        "evaluate_model", "k8s", "flows/evaluate_model.py:evaluate_model",
        "Evaluate a registered version on a GPU node.",
        pool="k8s-gpu", tags=("sftops", "k8s"),
    ),
)  # fmt: skip


def of_pool(pool: Pool) -> tuple[Deployment, ...]:
    return tuple(d for d in DEPLOYMENTS if d.pool == pool)


def names(pool: Pool = "process") -> tuple[str, ...]:
    """``flow/deployment`` names of one pool's deployments.

    >>> names()[:2]
    ('retrain/nightly', 'data_refresh/manual')
    """
    return tuple(d.full_name for d in of_pool(pool))


# --------------------------------------------------------------------------- infra/prefect.yaml


def render_entry(d: Deployment) -> str:
    """One entry of infra/prefect.yaml's ``deployments:`` list. Strings are JSON-quoted (valid
    YAML) where they could hold YAML syntax; pull steps and work pools are the file's anchors."""
    lines = [
        f"  - name: {d.name}",
        f"    entrypoint: {d.entrypoint}",
        f"    description: {json.dumps(d.description, ensure_ascii=False)}",
        f"    tags: [{', '.join(d.tags)}]",
    ]
    if d.cron:
        lines += [
            "    schedules:",
            f"      - cron: {json.dumps(d.cron)}",
            "        timezone: UTC",
            "        active: true",
        ]
    limit = d.concurrency_limit({})
    if limit is not None:
        lines.append(f"    concurrency_limit: {{limit: {limit}, collision_strategy: ENQUEUE}}")
    lines += ["    pull: *clone", f"    work_pool: *{POOL_ANCHORS[d.pool]}"]
    return "\n".join(lines) + "\n"


def render_section() -> str:
    """The ``deployments:`` section (to the end of the file), generated from the table."""
    parts, pool = [f"{MARKER}\n{GENERATED_NOTE}"], None
    for d in DEPLOYMENTS:
        parts.append("\n")  # a blank line between entries
        if d.pool != pool:
            pool = d.pool
            name, queue = POOL_TARGETS[pool]
            parts.append(f"  # {'-' * 16} work pool {name}, queue {queue}\n")
        parts.append(render_entry(d))
    return "".join(parts)


def render_file(current: str) -> str:
    """``current`` (infra/prefect.yaml's text) with its deployments section regenerated; the
    hand-written part above it (definitions: pull steps, pools, environment) is kept."""
    head, found, _ = current.partition(f"\n{MARKER}\n")
    if not found:
        raise ValueError(f"{PREFECT_YAML}: no line `{MARKER}`")
    return f"{head}\n{render_section()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sftops.stack.deployments",
        description="Regenerate (--write) or check (--check) infra/prefect.yaml's deployments.",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    path = args.root / PREFECT_YAML
    current = path.read_text(encoding="utf-8")
    wanted = render_file(current)
    if current == wanted:
        print(f"{path}: up to date")
        return 0
    if args.check:
        print(
            f"{path}: differs from sftops/stack/deployments.py; run with --write", file=sys.stderr
        )
        return 1
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(wanted, encoding="utf-8")
    os.replace(tmp, path)
    print(f"{path}: regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
