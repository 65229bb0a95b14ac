"""Every MLflow call of the project: tracking runs, the model registry, aliases, rollback.

One module per job; this package re-exports their public names, so callers write
``from sftops.mlops import registry; registry.promote(...)``. Modules inside the package import
each other directly, never through this facade.

- :mod:`.store`: which store (``MLFLOW_TRACKING_URI`` or ``<root>/mlflow.db``), a client bound to
  it, the reachability check, the SQLite store's one-time migration, experiments;
- :mod:`.lineage`: git commit, ``dvc.lock`` hashes and row counts of a checkout
  (:func:`lineage_from_repo`), and a logged run's lineage;
- :mod:`.runs`: every pipeline run is one MLflow run (:func:`log_pipeline_run`) with flattened
  params, per-step training metrics, evaluation metrics with their CI bounds, the reports and
  plots, and the lineage tags;
- :mod:`.pyfunc`: the registered model (:class:`ChatModel`), logged from code, no pickle;
- :mod:`.versions`: :func:`register_model` logs the fine-tuned folder as a pyfunc model,
  registers a new version, tags it with lineage, metrics and the hash of its own evaluation and
  points alias ``challenger`` at it; finding, resolving and downloading versions;
- :mod:`.aliases`: :func:`promote` records the gate's decision on the version (tags +
  description) and, when it says so, moves alias ``champion``; the champion it replaces is
  pushed on the model-level tag ``previous_champion`` (a JSON list) so that :func:`rollback` can
  move the alias back;
- :mod:`.approval`: the Prefect pause a reviewer answers before a promotion;
- :mod:`.values`: keys and values cut to MLflow's limits.
"""

from sftops.mlops.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    alias_lock,
    champion_version,
    promote,
    rollback,
)
from sftops.mlops.registry.approval import Approval, approval_request_text, request_approval
from sftops.mlops.registry.lineage import (
    REQUIRED_LINEAGE,
    lineage_from_repo,
    missing_lineage,
    run_lineage,
)
from sftops.mlops.registry.pyfunc import MODEL_CODE, ChatModel
from sftops.mlops.registry.runs import (
    EVALUATION_ARTIFACT,
    evaluation_metrics,
    flatten_params,
    log_pipeline_run,
)
from sftops.mlops.registry.store import (
    DEFAULT_EXPERIMENT,
    LOCAL_ARTIFACTS,
    LOCAL_DB,
    artifact_location,
    check_reachable,
    ensure_experiment,
    mlflow_client,
    prepare_local_store,
    store_root,
    tracking_uri,
)
from sftops.mlops.registry.values import MAX_DESCRIPTION, MAX_PARAM_VALUE, MAX_TAG_VALUE, UNKNOWN
from sftops.mlops.registry.versions import (
    EVALUATION_HASH_TAG,
    check_model_folder,
    download_champion,
    download_version,
    evaluation_sha256,
    find_version,
    folder_sha256,
    load_champion_metrics,
    load_version_evaluation,
    register_model,
    resolve_version,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_EXPERIMENT",
    "EVALUATION_ARTIFACT",
    "EVALUATION_HASH_TAG",
    "LOCAL_ARTIFACTS",
    "LOCAL_DB",
    "MAX_DESCRIPTION",
    "MAX_PARAM_VALUE",
    "MAX_TAG_VALUE",
    "MODEL_CODE",
    "PREVIOUS_CHAMPION_TAG",
    "REQUIRED_LINEAGE",
    "UNKNOWN",
    "Approval",
    "ChatModel",
    "alias_lock",
    "approval_request_text",
    "artifact_location",
    "champion_version",
    "check_model_folder",
    "check_reachable",
    "download_champion",
    "download_version",
    "ensure_experiment",
    "evaluation_metrics",
    "evaluation_sha256",
    "find_version",
    "flatten_params",
    "folder_sha256",
    "lineage_from_repo",
    "load_champion_metrics",
    "load_version_evaluation",
    "log_pipeline_run",
    "missing_lineage",
    "mlflow_client",
    "prepare_local_store",
    "promote",
    "register_model",
    "request_approval",
    "resolve_version",
    "rollback",
    "run_lineage",
    "store_root",
    "tracking_uri",
]
