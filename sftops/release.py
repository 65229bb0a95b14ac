"""The register and promote edges: read the reports the pipeline wrote, call the registry
(every MLflow call is in sftops.registry) and the pure gate (sftops.promotion)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.promotion import Decision, GateConfig, decide_from_metrics

log = logging.getLogger("sftops.release")


def _report(params: Params, name: str) -> dict[str, Any]:
    path = Path(params.paths.reports_dir) / name
    if not path.exists():
        raise SftopsError("report missing (run the pipeline up to evaluate first)", file=path)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def gate_config(params: Params) -> GateConfig:
    return GateConfig(**params.promote.model_dump(include=set(GateConfig.model_fields)))


def run_register(params: Params, root: Path | None = None) -> dict[str, Any]:
    """Log the pipeline run (params, training curve, evaluation, artifacts, lineage) and register
    the fine-tuned model; the new version gets alias `challenger`."""
    from sftops import registry

    root = root or Path.cwd()
    paths, cfg = params.paths, params.register_
    lineage = registry.lineage_from_repo(
        root,
        train_data=paths.train_aug if params.train.use_augmented else str(paths.split("train")),
        test_data=str(paths.split("test")),
        model_dir=paths.model_dir,
        base_model=params.train.base_model,
    )
    metrics = _report(params, "metrics.json")
    run_id = registry.log_pipeline_run(
        params.to_dict(),
        _report(params, "train_report.json"),
        metrics,
        [root / a for a in cfg.artifacts],
        lineage,
        experiment=cfg.experiment,
        root=root,
    )
    version = registry.register_model(
        run_id,
        root / paths.model_dir,
        cfg.model_name,
        lineage,
        metrics=metrics,
        allow_unknown_lineage=cfg.allow_unknown_lineage,
        root=root,
    )
    log.info("registered %s version %s (run %s)", cfg.model_name, version, run_id)
    return {
        "model_name": cfg.model_name,
        "version": version,
        "run_id": run_id,
        "tracking_uri": registry.tracking_uri(root),
        "lineage": lineage,
    }


def decide(params: Params, root: Path | None = None) -> Decision:
    """The gate's decision for the candidate of reports/metrics.json."""
    from sftops import registry

    metrics = _report(params, "metrics.json")
    champion = None
    if "champion" not in metrics.get("models", {}):
        champion = registry.load_champion_metrics(params.register_.model_name, root=root)
    return decide_from_metrics(metrics, gate_config(params), champion)


def run_promote(
    params: Params,
    version: str,
    *,
    force_reason: str | None = None,
    approved_by: str | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Gate `version` (or promote it by hand with `force_reason`) and move alias `champion`."""
    from sftops import registry

    if force_reason:
        decision = Decision.manual(force_reason, approved_by or "cli")
        reason = force_reason
    else:
        decision = decide(params, root)
        reason = "metric gate"
    moved = registry.promote(
        params.register_.model_name, version, decision, reason, approved_by=approved_by, root=root
    )
    return {
        "model_name": params.register_.model_name,
        "version": version,
        "promoted": moved,
        "reasons": decision.reasons,
    }


def run_rollback(params: Params, reason: str, root: Path | None = None) -> dict[str, Any]:
    from sftops import registry

    version = registry.rollback(params.register_.model_name, reason, root=root)
    return {"model_name": params.register_.model_name, "champion": version, "reason": reason}
