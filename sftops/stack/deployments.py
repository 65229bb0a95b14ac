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
# gpus: as many as params.yaml's training processes
TRAIN_PROCESSES: Literal["train.num_processes"] = "train.num_processes"


@dataclass(frozen=True)
class WorkPool:
    name: str
    queue: str
    kubernetes: bool  # a job per run, which requests its GPUs; else a process worker's runs
    job: str  # the anchor of its job variables among infra/prefect.yaml's definitions


POOLS: dict[Pool, WorkPool] = {
    # `sftops stack up`'s worker and compose's CPU worker
    "process": WorkPool("sftops", "default", False, "process_job"),
    # compose's GPU worker: its container reserves the GPUs (SFTOPS_GPUS), one run at a time
    "gpu": WorkPool("sftops-gpu", "default", False, "process_job"),
    # infra/k8s/base-job-template.json: one Job per run, `gpus` nvidia.com/gpu each
    "k8s-gpu": WorkPool("sftops-k8s", "gpu", True, "k8s_gpu_job"),
    "k8s-cpu": WorkPool("sftops-k8s", "cpu", True, "k8s_cpu_job"),
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
    # GPUs a run needs: a Kubernetes job requests them; a GPU worker must reserve as many
    gpus: int | Literal["train.num_processes"] = 0

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

    def gpu_count(self, train_processes: int) -> int:
        """
        >>> Deployment("f", "n", "f.py:f", "", gpus="train.num_processes").gpu_count(4)
        4
        """
        return train_processes if self.gpus == TRAIN_PROCESSES else int(self.gpus)


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
    # compose's GPU worker (infra/compose.yaml worker-gpu): training on the GPUs it reserves
    Deployment(
        "retrain", "gpu", "flows/retrain.py:retrain",
        "Retrain on the GPU worker (train.num_processes GPUs, one run at a time).",
        pool="gpu", concurrency=1, tags=("sftops", "gpu"), gpus=TRAIN_PROCESSES,
    ),
    # Kubernetes pool: one pod per flow run; training and evaluation on GPU nodes. One GPU
    # job per deployment at a time; raise with the cluster's GPU count.
    Deployment(
        "retrain", "k8s-gpu", "flows/retrain.py:retrain",
        "Retrain on a GPU node of the cluster (one pod per flow run).",
        pool="k8s-gpu", concurrency=1, tags=("sftops", "k8s"), gpus=TRAIN_PROCESSES,
    ),
    Deployment(
        "evaluate_model", "k8s", "flows/evaluate_model.py:evaluate_model",
        "Evaluate a registered version on a GPU node.",
        pool="k8s-gpu", tags=("sftops", "k8s"), gpus=1,  # evaluation runs in one process
    ),
    Deployment(
        "data_refresh", "k8s", "flows/data_refresh.py:data_refresh",
        "Data stages on a CPU node of the cluster.",
        pool="k8s-cpu", concurrency=1, tags=("sftops", "k8s"),
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


def train_processes(root: Path) -> int:
    """``train.num_processes`` of the project's params.yaml (what a default run trains with)."""
    from sftops.config import load_params

    return load_params(root / "params.yaml").train.num_processes


def render_entry(d: Deployment, train_processes: int) -> str:
    """One entry of infra/prefect.yaml's ``deployments:`` list. Strings are JSON-quoted (valid
    YAML) where they could hold YAML syntax; the pull steps and each pool's job variables are
    anchors of the file's definitions; a Kubernetes job adds its GPU request to them."""
    pool = POOLS[d.pool]
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
    lines += [
        "    pull: *clone",
        "    work_pool:",
        f"      name: {pool.name}",
        f"      work_queue_name: {pool.queue}",
    ]
    if pool.kubernetes:
        lines += [
            "      job_variables:",
            f"        <<: *{pool.job}",
            f"        gpus: {d.gpu_count(train_processes)}",
        ]
    else:
        lines.append(f"      job_variables: *{pool.job}")
    return "\n".join(lines) + "\n"


def render_section(train_processes: int) -> str:
    """The ``deployments:`` section (to the end of the file), generated from the table."""
    parts, pool = [f"{MARKER}\n{GENERATED_NOTE}"], None
    for d in DEPLOYMENTS:
        parts.append("\n")  # a blank line between entries
        if d.pool != pool:
            pool = d.pool
            parts.append(
                f"  # {'-' * 16} work pool {POOLS[pool].name}, queue {POOLS[pool].queue}\n"
            )
        parts.append(render_entry(d, train_processes))
    return "".join(parts)


def render_file(current: str, train_processes: int) -> str:
    """``current`` (infra/prefect.yaml's text) with its deployments section regenerated; the
    hand-written part above it (definitions: pull steps, job variables, environment) is kept."""
    head, found, _ = current.partition(f"\n{MARKER}\n")
    if not found:
        raise ValueError(f"{PREFECT_YAML}: no line `{MARKER}`")
    return f"{head}\n{render_section(train_processes)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sftops.stack.deployments",
        description="Regenerate (--write) or check (--check) infra/prefect.yaml's deployments "
        "(GPU requests: train.num_processes of the root's params.yaml).",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    path = args.root / PREFECT_YAML
    current = path.read_text(encoding="utf-8")
    wanted = render_file(current, train_processes(args.root))
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
