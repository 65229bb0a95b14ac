"""A run that asks for more training processes gets as many GPUs: the flow run's job variables
(read back from a Prefect test-harness API) and the Kubernetes Job the worker would submit
(the committed base job template, rendered by Prefect's own worker code; no cluster)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "infra" / "k8s" / "base-job-template.json").read_text())
POOL, QUEUE, IMAGE = "sftops-k8s", "gpu", "registry.example/sftops:cuda"


@pytest.fixture(scope="module")
def k8s_deployment() -> Any:
    """retrain/k8s-gpu as `prefect deploy` reads it from infra/prefect.yaml, on a kubernetes
    pool with the committed base job template (the server takes the pool type as given)."""
    from prefect import get_client
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.testing.utilities import prefect_test_harness
    from prefect.utilities.callables import parameter_schema

    from flows.retrain import retrain

    text = (ROOT / "infra" / "prefect.yaml").read_text(encoding="utf-8")
    entries = PrefectYamlModel.model_validate(yaml.safe_load(text)).deployments
    entry = next(
        d.model_dump(exclude_unset=True, mode="json")
        for d in entries
        if d.name == "k8s-gpu" and d.entrypoint == "flows/retrain.py:retrain"
    )
    variables = {**entry["work_pool"]["job_variables"], "image": IMAGE}  # deploy-time $VAR
    with (
        prefect_test_harness(server_startup_timeout=120),
        get_client(sync_client=True) as client,
    ):
        client.create_work_pool(
            WorkPoolCreate(name=POOL, type="kubernetes", base_job_template=TEMPLATE)
        )
        deployment_id = client.create_deployment(
            client.create_flow_from_name("retrain"),
            name="k8s-gpu",
            work_pool_name=POOL,
            work_queue_name=QUEUE,
            job_variables=variables,
            parameter_openapi_schema=parameter_schema(retrain).model_dump_for_openapi(),
            enforce_parameter_schema=True,
        )
        yield client.read_deployment(deployment_id)


def rendered_job(flow_run: Any) -> dict[str, Any]:
    """The Job manifest a Kubernetes worker builds for ``flow_run``: Prefect's worker code
    (merge of deployment and flow-run job variables over the pool's template), as
    prefect-kubernetes' job configuration receives it."""
    from prefect import get_client
    from prefect.workers.base import BaseJobConfiguration

    class KubernetesJob(BaseJobConfiguration):
        job_manifest: dict[str, Any]

    async def resolve() -> dict[str, Any]:
        async with get_client() as client:
            pool = await client.read_work_pool(POOL)
            config = await KubernetesJob.resolve_for_flow_run(
                flow_run, client=client, work_pool=pool, worker_name="test"
            )
        return config.job_manifest

    return asyncio.run(resolve())


def gpu_limit(manifest: dict[str, Any]) -> Any:
    return manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"
    ]


def test_a_run_submitted_with_four_processes_requests_four_gpus(k8s_deployment: Any) -> None:
    from prefect import get_client

    from sftops.stack.gpus import submit

    assert k8s_deployment.job_variables["gpus"] == 1  # params.yaml: train.num_processes 1
    parameters = {"overrides": {"train.num_processes": 4}}
    with get_client(sync_client=True) as client:
        created = submit("retrain/k8s-gpu", parameters, client)
        run = client.read_flow_run(created.id)
    assert run.job_variables == {"gpus": 4}
    manifest = rendered_job(run)
    assert gpu_limit(manifest) == 4
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE

    with get_client(sync_client=True) as client:  # the defaults: the deployment's request
        plain = client.read_flow_run(submit("retrain/k8s-gpu", {}, client).id)
    assert not plain.job_variables
    assert gpu_limit(rendered_job(plain)) == 1


def test_a_ui_custom_run_with_four_processes_is_rescheduled_with_four_gpus(
    k8s_deployment: Any,
) -> None:
    """The UI sends parameters only; the run, at its start in a one-GPU pod, schedules itself
    again with four GPUs and the same parameters."""
    from prefect import get_client

    from sftops.stack.gpus import admit, processes_asked

    parameters = {"num_processes": 4, "learning_rate": 3e-4}
    asked: list[int] = []

    def needed() -> int:
        asked.append(1)
        return processes_asked(parameters) or 1

    with get_client(sync_client=True) as client:
        ui_run = client.create_flow_run_from_deployment(k8s_deployment.id, parameters=parameters)
        assert gpu_limit(rendered_job(client.read_flow_run(ui_run.id))) == 1
        moved = admit(ui_run.id, needed, client)
        assert moved is not None and moved.id != ui_run.id
        again = client.read_flow_run(moved.id)
        assert again.job_variables == {"gpus": 4}
        assert again.parameters == client.read_flow_run(ui_run.id).parameters
        assert again.deployment_id == k8s_deployment.id
        assert gpu_limit(rendered_job(again)) == 4
        # the rescheduled run has what it needs and goes on; so does a run needing one GPU
        assert admit(again.id, needed, client) is None
        one = client.create_flow_run_from_deployment(k8s_deployment.id, parameters={})
        assert admit(one.id, lambda: 1, client) is None
    assert len(asked) == 2


def test_runs_without_a_per_run_gpu_request_are_left_alone(k8s_deployment: Any) -> None:
    """A run of no deployment (`sftops run`) and a process pool's run (the GPUs are the
    worker machine's) never read params for GPUs nor get rescheduled."""
    from prefect import flow, get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from sftops.stack.gpus import admit, submit

    @flow(name="retrain")
    def local() -> None:
        pass

    def needed() -> int:
        raise AssertionError("not a run whose pool requests GPUs")

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(local)
        assert admit(run.id, needed, client) is None
        client.create_work_pool(WorkPoolCreate(name="sftops", type="process"))
        deployment_id = client.create_deployment(
            client.create_flow_from_name("retrain"),
            name="gpu",
            work_pool_name="sftops",
            job_variables={"env": {"PYTHONPATH": "."}},
        )
        parameters = {"overrides": {"train.num_processes": 4}}
        created = submit("retrain/gpu", parameters, client)
        assert created.deployment_id == deployment_id and not created.job_variables
        assert admit(created.id, needed, client) is None


def test_the_retrain_flows_gpu_request_task_reads_the_runs_params(
    k8s_deployment: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the retrain flow calls first: params.yaml with the run's overrides decides."""
    from prefect import get_client

    from tasks.train import gpu_request

    params_file = str(ROOT / "params.yaml")
    with get_client(sync_client=True) as client:
        ui_run = client.create_flow_run_from_deployment(
            k8s_deployment.id, parameters={"num_processes": 4}
        )
        monkeypatch.setenv("PREFECT__FLOW_RUN_ID", str(ui_run.id))
        assert gpu_request.fn(params_file, {"train.num_processes": 1}) is None
        name = gpu_request.fn(params_file, {"train.num_processes": 4})
        assert name is not None
        (again,) = [r for r in client.read_flow_runs() if r.name == name]
        assert again.job_variables == {"gpus": 4}


def test_the_retrain_flow_in_a_one_gpu_pod_ends_cancelled_naming_its_successor(
    k8s_deployment: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow itself, run as the UI's flow run of the deployment (what the pod executes):
    it stops before making a workspace and the run scheduled in its place has 3 GPUs."""
    import inspect

    from prefect import get_client
    from prefect.flow_engine import run_flow

    import flows.retrain
    from flows.retrain import retrain

    def no_workspace(overrides: Any) -> None:
        raise AssertionError("a run without its GPUs went on to make a workspace")

    monkeypatch.setattr(flows.retrain, "open_workspace", no_workspace)
    defaults = {
        name: None if name != "params_file" else str(ROOT / "params.yaml")
        for name in inspect.signature(retrain.fn).parameters
    }
    with get_client(sync_client=True) as client:
        ui_run = client.create_flow_run_from_deployment(
            k8s_deployment.id, parameters={"num_processes": 3}
        )
        state = run_flow(
            retrain,
            flow_run=client.read_flow_run(ui_run.id),
            parameters={**defaults, "num_processes": 3},
            return_type="state",
        )
        assert state.is_cancelled()
        assert client.read_flow_run(ui_run.id).state.is_cancelled()
        name = state.message.split()[2]  # "rescheduled as <name> with the GPUs it needs"
        (again,) = [r for r in client.read_flow_runs() if r.name == name]
    assert again.job_variables == {"gpus": 3}
    assert again.parameters == {"num_processes": 3}
    assert again.state.is_scheduled()
