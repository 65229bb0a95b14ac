"""Schema checks of the deployment files that this machine cannot run (no Docker daemon, no
cluster): the compose file, the Dockerfile, the Kubernetes work pool template and manifests,
and the Prefect project file. ``docker compose config`` runs too where the plugin exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PLACEHOLDER = re.compile(r"^\{\{\s*([\w.]+)\s*\}\}$")
SECRET_ENV = re.compile(r"(PASSWORD|SECRET|AUTH_STRING|ACCESS_KEY|PREFECT_AUTH|SECRET_KEY)")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_compose_has_every_service_with_healthchecks_and_local_ports() -> None:
    services = compose()["services"]
    for name in ("postgres", "minio", "prefect-server", "mlflow", "worker-cpu", "worker-gpu"):
        assert name in services, name
    for name in ("postgres", "minio", "prefect-server", "mlflow"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    published = {name: [str(p) for p in svc.get("ports", [])] for name, svc in services.items()}
    assert published["prefect-server"] == ["127.0.0.1:4200:4200"]
    assert published["mlflow"] == ["127.0.0.1:5000:5000"]
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


def test_compose_servers_use_postgres_s3_and_auth() -> None:
    services = compose()["services"]
    prefect = env_of(services["prefect-server"])
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "PREFECT_SERVER_API_AUTH_STRING" in prefect
    mlflow = services["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--artifacts-destination=s3://" in command
    assert "--app-name=basic-auth" in command
    assert env_of(mlflow)["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    for name in ("prefect-server", "mlflow", "worker-cpu"):
        deps = services[name]["depends_on"]
        assert all(d.get("condition") for d in deps.values()), name


def test_compose_gpu_worker_reserves_nvidia_devices() -> None:
    worker = compose()["services"]["worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert devices[0]["capabilities"] == ["gpu"]
    assert worker["build"]["args"]["VARIANT"] == "cuda"
    assert "worker-cpu" in compose()["services"]
    assert "deploy" not in compose()["services"]["worker-cpu"]


def test_compose_workers_share_the_model_cache_on_a_volume() -> None:
    """Each flow run clones the project afresh: without a shared SFTOPS_CACHE_DIR every run
    would dequantise the base model again."""
    services = compose()["services"]
    for name in ("worker-cpu", "worker-gpu"):
        cache = env_of(services[name])["SFTOPS_CACHE_DIR"]
        mounts = {v.split(":", 1)[1]: v.split(":", 1)[0] for v in services[name]["volumes"]}
        assert mounts.get(cache) in compose()["volumes"], name
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert cache in dockerfile  # created in the image for its non-root user


def test_compose_takes_every_secret_from_the_environment() -> None:
    for name, service in compose()["services"].items():
        for key, value in env_of(service).items():
            if SECRET_ENV.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", str(value)), f"{name}.{key}"
            if "postgresql" in str(value) and "@" in str(value):
                assert "${POSTGRES_PASSWORD" in str(value), f"{name}.{key} embeds a password"


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI missing")
def test_docker_compose_config_accepts_the_file() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin missing")
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "POSTGRES_PASSWORD": "x",
        "S3_ACCESS_KEY": "x",
        "S3_SECRET_KEY": "x",
        "PREFECT_AUTH": "u:p",
        "MLFLOW_ADMIN_PASSWORD": "x" * 12,
        "MLFLOW_SECRET_KEY": "x",
        "SFTOPS_REPO": "file:///repo",
        "SFTOPS_COMMIT": "0" * 40,
    }
    subprocess.run(
        ["docker", "compose", "-f", str(INFRA / "compose.yaml"), "config", "-q"],
        check=True,
        env=env,
    )


def test_dockerfile_has_variants_non_root_user_and_pinned_constraints() -> None:
    text = (INFRA / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG VARIANT=cpu$", text, re.M)
    assert "cpu)" in text and "cuda)" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "useradd" in text
    installs = re.findall(r"pip install[^\n]*", text)
    project = [line for line in installs if '".[stack]"' in line]
    assert project and all("-c " in line for line in project)
    assert "torch==2.13.0" in text
    assert (INFRA / "docker" / "Dockerfile.dockerignore").exists()


# --------------------------------------------------------------------------- Kubernetes


def job_template() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (INFRA / "k8s" / "base-job-template.json").read_text(encoding="utf-8")
    )
    return data


def placeholders(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(placeholders(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(placeholders(v) for v in node)) if node else set()
    if isinstance(node, str):
        return set(re.findall(r"\{\{\s*([\w.]+)\s*\}\}", node))
    return set()


def render_job(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The Job a Kubernetes worker would submit for these variable values (Prefect's template
    substitution; env as a list of name/value pairs, as prefect-kubernetes turns it)."""
    from prefect.utilities.templating import apply_values

    config = apply_values(template["job_configuration"], values)
    manifest: dict[str, Any] = config["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in (container.get("env") or {}).items()]
    container["args"] = str(container.get("args") or "").split() or None
    limits = container["resources"]["limits"]
    limits["nvidia.com/gpu"] = str(limits["nvidia.com/gpu"])
    return manifest


def defaults(template: dict[str, Any]) -> dict[str, Any]:
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values.update(name="sftops-run", command="prefect flow-run execute")
    return values


def deserialize(manifest: dict[str, Any], kind: str) -> Any:
    """Deserialise with the Kubernetes client's models and check that nothing was dropped
    (the client ignores unknown fields, so a typo would otherwise pass silently)."""
    kubernetes = pytest.importorskip("kubernetes")

    api = kubernetes.client.ApiClient()
    obj = api._ApiClient__deserialize(manifest, kind)
    back = api.sanitize_for_serialization(obj)
    assert normalise(back) == normalise(manifest), f"{kind}: fields not in the schema"
    return obj


def normalise(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: normalise(v) for k, v in node.items() if v not in (None, {}, [])}
    if isinstance(node, list):
        return [normalise(v) for v in node]
    return node


def test_k8s_template_variables_cover_every_placeholder_and_defaults_validate() -> None:
    import jsonschema

    template = job_template()
    used = placeholders(template["job_configuration"])
    declared = set(template["variables"]["properties"])
    assert used <= declared, used - declared
    jsonschema.validate(defaults(template), template["variables"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**defaults(template), "gpus": -1}, template["variables"])


def test_k8s_job_validates_against_the_kubernetes_schema() -> None:
    job = deserialize(render_job(job_template(), defaults(job_template())), "V1Job")
    pod = job.spec.template.spec
    container = pod.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert pod.tolerations[0].key == "nvidia.com/gpu"
    assert pod.tolerations[0].effect == "NoSchedule"
    assert container.env_from[0].secret_ref.name == "sftops-credentials"
    env = {e.name: e.value for e in container.env}
    assert env["SFTOPS_S3_ENDPOINT"].startswith("http")
    assert not any(SECRET_ENV.search(name) for name in env), "credentials belong in the Secret"
    assert pod.security_context.run_as_non_root is True
    cpu_job = deserialize(
        render_job(job_template(), {**defaults(job_template()), "gpus": 0, "node_selector": {}}),
        "V1Job",
    )
    assert cpu_job.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "0"


def test_k8s_pods_share_one_model_cache_claim_the_manifests_define() -> None:
    template = job_template()
    job = deserialize(render_job(template, defaults(template)), "V1Job")
    pod = job.spec.template.spec
    (volume,) = [v for v in pod.volumes if v.persistent_volume_claim is not None]
    (mount,) = [m for m in pod.containers[0].volume_mounts if m.name == volume.name]
    env = {e.name: e.value for e in pod.containers[0].env}
    assert env["SFTOPS_CACHE_DIR"] == mount.mount_path  # sftops builds its caches there
    claim = deserialize(
        yaml.safe_load((INFRA / "k8s" / "model-cache.yaml").read_text(encoding="utf-8")),
        "V1PersistentVolumeClaim",
    )
    assert volume.persistent_volume_claim.claim_name == claim.metadata.name
    assert claim.metadata.namespace == defaults(template)["namespace"]
    assert claim.spec.access_modes == ["ReadWriteMany"]  # pods on several nodes at once


def test_k8s_worker_manifests_validate() -> None:
    kinds = {
        "ServiceAccount": "V1ServiceAccount",
        "Role": "V1Role",
        "RoleBinding": "V1RoleBinding",
        "Deployment": "V1Deployment",
        "Secret": "V1Secret",
    }
    seen = set()
    for path in ("worker.yaml", "secret.example.yaml"):
        for doc in yaml.safe_load_all((INFRA / "k8s" / path).read_text(encoding="utf-8")):
            deserialize(doc, kinds[doc["kind"]])
            seen.add(doc["kind"])
    assert seen == set(kinds)
    secret = yaml.safe_load((INFRA / "k8s" / "secret.example.yaml").read_text(encoding="utf-8"))
    assert all(value == "" for value in secret["stringData"].values())


# --------------------------------------------------------------------------- Prefect


def test_prefect_yaml_deployments_clone_the_project_and_target_existing_pools() -> None:
    project = yaml.safe_load((INFRA / "prefect.yaml").read_text(encoding="utf-8"))
    for deployment in project["deployments"]:
        steps = [next(iter(step)) for step in deployment["pull"]]
        assert steps[0] == "prefect.deployments.steps.git_clone"
        clone = deployment["pull"][0]["prefect.deployments.steps.git_clone"]
        assert clone["commit_sha"] == "{{ $SFTOPS_COMMIT }}"
        assert deployment["work_pool"]["name"] in ("sftops", "sftops-gpu", "sftops-k8s")
        env = deployment["work_pool"]["job_variables"]["env"]
        assert not any(SECRET_ENV.search(name) for name in env)
    k8s_gpu = next(d for d in project["deployments"] if d["name"] == "k8s-gpu")
    assert k8s_gpu["work_pool"]["job_variables"]["gpus"] >= 1
    declared = set(job_template()["variables"]["properties"])
    for deployment in project["deployments"]:
        if deployment["work_pool"]["name"] == "sftops-k8s":
            assert set(deployment["work_pool"]["job_variables"]) <= declared


# --------------------------------------------------------------------------- deployments table


def test_every_table_entrypoint_is_the_flow_it_names() -> None:
    from sftops.stack.deployments import DEPLOYMENTS

    for d in DEPLOYMENTS:
        path, func = d.entrypoint.split(":")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert f"def {func}(" in source, d.entrypoint
        flow = re.search(r'@flow\(name="([\w-]+)"', source)
        assert flow and flow.group(1) == d.flow, (d.entrypoint, d.flow)
    full = [d.full_name for d in DEPLOYMENTS]
    assert len(full) == len(set(full)), "a deployment is declared twice"


def test_prefect_yaml_is_what_the_deployments_table_generates() -> None:
    """infra/prefect.yaml's deployments section is generated from sftops/stack/deployments.py:
    after editing the table (or params.yaml's train.num_processes),
    `python -m sftops.stack.deployments --write`."""
    from sftops.stack.deployments import render_file, train_processes

    current = (INFRA / "prefect.yaml").read_text(encoding="utf-8")
    assert render_file(current, train_processes(ROOT)) == current, (
        "infra/prefect.yaml differs from the table: python -m sftops.stack.deployments --write"
    )


def prefect_reads(text: str) -> list[dict[str, Any]]:
    """The deployments as `prefect deploy` reads the file: its own pydantic model (the CLI only
    prints a warning and skips every deployment when the file does not validate)."""
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(yaml.safe_load(text))
    return [d.model_dump(exclude_unset=True, mode="json") for d in model.deployments]


def test_prefect_yaml_as_prefect_reads_it_says_what_the_table_says() -> None:
    """The generated text, once YAML resolves its anchors and merges, is each row of the table."""
    from sftops.stack.deployments import DEPLOYMENTS, POOLS, train_processes

    loaded = prefect_reads((INFRA / "prefect.yaml").read_text(encoding="utf-8"))
    assert len(loaded) == len(DEPLOYMENTS)
    declared = set(job_template()["variables"]["properties"])
    for d, entry in zip(DEPLOYMENTS, loaded, strict=True):
        assert (entry["name"], entry["entrypoint"]) == (d.name, d.entrypoint)
        assert entry["description"] == d.description
        assert entry["tags"] == list(d.tags)
        crons = [(s["cron"], s["timezone"]) for s in entry.get("schedules") or []]
        assert crons == ([(d.cron, "UTC")] if d.cron else [])
        limit = (entry.get("concurrency_limit") or {}).get("limit")
        assert limit == d.concurrency_limit({})
        pool, wanted = entry["work_pool"], POOLS[d.pool]
        assert (pool["name"], pool["work_queue_name"]) == (wanted.name, wanted.queue)
        variables = pool["job_variables"]
        assert variables["env"]["PYTHONPATH"] == "."
        if wanted.kubernetes:
            assert variables["gpus"] == d.gpu_count(train_processes(ROOT))
            assert set(variables) <= declared
        else:
            assert "gpus" not in variables  # a process worker's GPUs are its machine's


def test_gpu_requests_follow_train_num_processes(tmp_path: Path) -> None:
    """A project training with 4 processes asks Kubernetes for 4 GPUs per retrain run (and
    still 1 for an evaluation); the repository's file is then stale for it."""
    from sftops.stack.deployments import main, render_file

    (tmp_path / "infra").mkdir()
    shutil.copy(INFRA / "prefect.yaml", tmp_path / "infra" / "prefect.yaml")
    (tmp_path / "params.yaml").write_text("train:\n  num_processes: 4\n", encoding="utf-8")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    text = render_file((INFRA / "prefect.yaml").read_text(encoding="utf-8"), 4)
    gpus = {
        f"{d['entrypoint']}|{d['name']}": d["work_pool"]["job_variables"].get("gpus")
        for d in prefect_reads(text)
    }
    assert gpus["flows/retrain.py:retrain|k8s-gpu"] == 4
    assert gpus["flows/evaluate_model.py:evaluate_model|k8s"] == 1
    assert gpus["flows/data_refresh.py:data_refresh|k8s"] == 0
    job = deserialize(render_job(job_template(), {**defaults(job_template()), "gpus": 4}), "V1Job")
    assert job.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "4"


def test_compose_deploys_the_tables_worker_deployments_and_reserves_enough_gpus() -> None:
    from sftops.stack.deployments import names, of_pool, train_processes

    services = compose()["services"]
    command = " ".join(services["deploy"]["command"])
    deployed = re.findall(r"--name (\S+)", command)
    assert sorted(deployed) == sorted(names("process") + names("gpu"))
    for pool in ("sftops", "sftops-gpu"):
        assert f"prefect work-pool create {pool} --type process" in command
    assert "--pool sftops-gpu" in " ".join(services["worker-gpu"]["command"])
    count = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["count"]
    match = re.fullmatch(r"\$\{SFTOPS_GPUS:-(\d+)\}", str(count))
    assert match, f"worker-gpu reserves {count!r}, not ${{SFTOPS_GPUS:-N}}"
    default = int(match.group(1))
    needed = max(d.gpu_count(train_processes(ROOT)) for d in of_pool("gpu"))
    assert default >= needed >= 1


def test_deployments_check_fails_on_a_stale_file_and_write_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sftops.stack.deployments import main

    (tmp_path / "infra").mkdir()
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    stale = (INFRA / "prefect.yaml").read_text(encoding="utf-8")
    stale = stale.replace("limit: 2,", "limit: 7,", 1)
    (tmp_path / "infra" / "prefect.yaml").write_text(stale, encoding="utf-8")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "run with --write" in capsys.readouterr().err
    assert main(["--write", "--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    repaired = (tmp_path / "infra" / "prefect.yaml").read_text(encoding="utf-8")
    assert repaired == (INFRA / "prefect.yaml").read_text(encoding="utf-8")
