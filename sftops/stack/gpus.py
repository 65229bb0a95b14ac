"""A flow run's GPU request follows the run's own parameters.

A Kubernetes work pool's job (``infra/k8s/base-job-template.json``) requests ``gpus``
``nvidia.com/gpu``; a deployment's job variables set it once, from params.yaml's
``train.num_processes`` at deploy time. A run that asks for more training processes (the
retrain form's ``num_processes``, ``overrides: {"train.num_processes": N}`` or another
``params_file``) needs as many GPUs in its pod, and Prefect's job templates cannot read
parameters. So:

- :func:`submit` (scripts, the API) creates the run with ``job_variables: {gpus: N}`` at once;
- a run created without them (a custom run from the Prefect UI sends parameters only) checks
  at its start, in :func:`admit`: when its pod has fewer GPUs than it needs, it schedules the
  same deployment with the same parameters and ``gpus: N``, and ends Cancelled naming that run
  (its own pod held the deployment's GPUs for the few seconds this takes).

Process workers (``sftops stack``, compose) have the GPUs of their machine or container: their
deployments carry no ``gpus`` job variable and nothing here changes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

GPU_VARIABLE = "gpus"  # the base job template's variable behind nvidia.com/gpu
PROCESSES_KEY = "train.num_processes"
FORM_FIELD = "num_processes"  # the retrain form's field for it


def processes_asked(parameters: Mapping[str, Any]) -> int | None:
    """``train.num_processes`` a run's parameters set (the form field wins over ``overrides``,
    as the flow applies them); None when they leave params.yaml's value.

    >>> processes_asked({"overrides": {"train.num_processes": 4}})
    4
    >>> processes_asked({"num_processes": 2, "overrides": {"train.num_processes": 4}})
    2
    >>> processes_asked({"learning_rate": 3e-4, "num_processes": None}) is None
    True
    """
    value = parameters.get(FORM_FIELD)
    if value is None:
        value = (parameters.get("overrides") or {}).get(PROCESSES_KEY)
    return None if value is None else int(value)


def gpu_job_variables(job_variables: Mapping[str, Any], processes: int | None) -> dict[str, Any]:
    """Flow-run job variables that give a run ``processes`` GPUs, where its job variables
    (deployment's, merged with the run's) request GPUs per run; ``{}`` where they do not, or
    where they already match.

    >>> gpu_job_variables({"gpus": 1, "image": "x"}, 4)
    {'gpus': 4}
    >>> gpu_job_variables({"gpus": 4}, 4), gpu_job_variables({"env": {}}, 4)
    ({}, {})
    """
    if processes is None or GPU_VARIABLE not in job_variables:
        return {}
    if int(job_variables[GPU_VARIABLE]) == processes:
        return {}
    return {GPU_VARIABLE: processes}


def submit(
    name: str, parameters: dict[str, Any], client: SyncPrefectClient | None = None
) -> FlowRun:
    """Schedule a run of deployment ``name`` (``flow/deployment``) with the GPUs its
    parameters ask for; returns the flow run at once."""
    from prefect import get_client

    def create(c: SyncPrefectClient) -> FlowRun:
        deployment = c.read_deployment_by_name(name)
        variables = gpu_job_variables(deployment.job_variables or {}, processes_asked(parameters))
        return c.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, job_variables=variables or None
        )

    if client is not None:
        return create(client)
    with get_client(sync_client=True) as own:
        return create(own)


def admit(
    flow_run_id: str | UUID, needed: Callable[[], int], client: SyncPrefectClient
) -> FlowRun | None:
    """At a run's start: ``None`` when it may go on (no deployment, a pool without per-run
    GPUs, or enough of them); else the run just scheduled in its place with ``needed()`` GPUs.
    ``needed`` is called only for runs that request GPUs per run (it reads params.yaml)."""
    run = client.read_flow_run(UUID(str(flow_run_id)))
    if run.deployment_id is None:
        return None
    deployment = client.read_deployment(run.deployment_id)
    granted = {**(deployment.job_variables or {}), **(run.job_variables or {})}
    if GPU_VARIABLE not in granted:
        return None
    processes = needed()
    if int(granted[GPU_VARIABLE]) >= processes:
        return None
    return client.create_flow_run_from_deployment(
        deployment.id,
        parameters=run.parameters,
        job_variables={**(run.job_variables or {}), GPU_VARIABLE: processes},
        tags=[t for t in run.tags if t not in (deployment.tags or [])] or None,
    )
