"""The register and promote edges: read the reports a run's workspace holds, call the registry
(every MLflow call is in sftops.mlops.registry) and the pure gate (sftops.mlops.promotion).
A decision about version N reads version N's own recorded evaluation from the registry, never
a file on disk."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sftops.config import Params
from sftops.errors import SftopsError
from sftops.io import write_json
from sftops.mlops.promotion import Decision, GateConfig, decide_from_metrics

log = logging.getLogger("sftops.mlops.release")
CANDIDATE_EVALUATION = "candidate_evaluation.json"  # metrics.json + the champion comparison


def _report(params: Params, root: Path, name: str) -> dict[str, Any]:
    path = root / params.paths.reports_dir / name
    if not path.exists():
        raise SftopsError("report missing (run the pipeline up to evaluate first)", file=path)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def gate_config(params: Params) -> GateConfig:
    return GateConfig(**params.promote.model_dump(include=set(GateConfig.model_fields)))


def compare_champion(params: Params, root: Path) -> dict[str, Any] | None:
    """The workspace's evaluation extended with the registry's current champion, evaluated on
    the same test rows (cached per champion version and test set); ``None`` when there is no
    champion or the comparison is turned off. Runs after the DVC `evaluate` stage, outside DVC:
    the champion is registry state, not a tracked input."""
    from sftops.evaluation.reference import compare_with_reference
    from sftops.mlops import registry

    if not (params.register_.enabled and params.promote.compare_champion):
        return None
    name = params.register_.model_name
    mv = registry.champion_version(name, root=root)
    if mv is None:
        log.info("no champion of %s yet: the gate compares with the base model", name)
        return None
    rooted = params.rooted(root)
    cache = Path(rooted.paths.cache_dir)
    reference_id = f"{name}/v{mv.version}/{mv.tags.get('model.sha256', 'unknown')[:16]}"
    folder = registry.download_version(
        name, str(mv.version), cache / "registry" / f"{name}-v{mv.version}", root=root
    )
    evaluation = compare_with_reference(rooted, "champion", folder, reference_id, cache)
    evaluation["reference"]["version"] = str(mv.version)
    write_json(evaluation, Path(rooted.paths.reports_dir) / CANDIDATE_EVALUATION)
    return evaluation


def run_register(
    params: Params,
    root: Path | None = None,
    *,
    evaluation: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Log the pipeline run of workspace ``root`` (params, training curve, evaluation,
    artifacts, lineage) and register its model; the new version gets alias `challenger` and
    carries ``evaluation`` (default: the evaluate stage's metrics.json) as its own record, which
    the gate reads. The same weights registered before: that version, nothing logged again."""
    from sftops.mlops import registry

    root = Path(root or Path.cwd())
    paths, cfg = params.paths, params.register_
    model_dir = root / paths.model_dir
    registry.check_model_folder(model_dir)
    known = registry.find_version(cfg.model_name, registry.folder_sha256(model_dir), root=root)
    if known is not None:
        log.info("this model is already %s version %s: not registered again", cfg.model_name, known)
        return {
            "model_name": cfg.model_name,
            "version": known,
            "run_id": None,
            "tracking_uri": registry.tracking_uri(root),
            "already_registered": True,
        }
    lineage = registry.lineage_from_repo(
        root,
        train_data=paths.train_aug if params.train.use_augmented else str(paths.split("train")),
        test_data=str(paths.split("test")),
        model_dir=paths.model_dir,
        base_model=params.train.base_model,
    )
    lineage.update(tags or {})
    # A JSON round trip: the recorded evaluation hashes the same as its artifact read back.
    metrics = json.loads(json.dumps(evaluation or _report(params, root, "metrics.json")))
    run_id = registry.log_pipeline_run(
        params.to_dict(),
        _report(params, root, "train_report.json"),
        metrics,
        [root / a for a in cfg.artifacts],
        lineage,
        experiment=cfg.experiment,
        run_name=lineage.get("dvc.experiment"),
        root=root,
    )
    version = registry.register_model(
        run_id,
        model_dir,
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
        "already_registered": False,
    }


def decide(params: Params, version: str, root: Path | None = None) -> Decision:
    """The gate for ``version``, on ``version``'s own recorded evaluation: against the current
    champion (the paired comparison recorded with it when it was made against that champion;
    else the champion's own recorded evaluation, which must be on the same test set), or against
    the base model when there is no other champion."""
    from sftops.mlops import registry

    name = params.register_.model_name
    evaluation = registry.load_version_evaluation(name, version, root=root)
    champion = registry.champion_version(name, root=root)
    gate = gate_config(params)
    if champion is None or str(champion.version) == str(version):
        return decide_from_metrics(_without_champion(evaluation), gate)
    recorded = (evaluation.get("reference") or {}).get("version")
    if recorded == str(champion.version) and "champion" in evaluation.get("models", {}):
        return decide_from_metrics(evaluation, gate)
    champion_record = registry.load_version_evaluation(name, str(champion.version), root=root)
    champion_metrics = {
        **champion_record["models"]["candidate"],
        "test_set": champion_record.get("test_set"),
    }
    return decide_from_metrics(_without_champion(evaluation), gate, champion_metrics)


def _without_champion(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The evaluation without a champion comparison made against another version."""
    out = dict(evaluation)
    out["models"] = {k: v for k, v in evaluation.get("models", {}).items() if k != "champion"}
    return out


def run_promote(
    params: Params,
    version: str,
    *,
    force_reason: str | None = None,
    approved_by: str | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Gate `version` on its own evaluation (or promote it by hand with `force_reason`) and move
    alias `champion`."""
    from sftops.mlops import registry

    version = str(version).removeprefix("v")
    if force_reason:
        decision = Decision.manual(force_reason, approved_by or "cli")
        reason = force_reason
    else:
        decision = decide(params, version, root)
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
    from sftops.mlops import registry

    version = registry.rollback(params.register_.model_name, reason, root=root)
    return {"model_name": params.register_.model_name, "champion": version, "reason": reason}
