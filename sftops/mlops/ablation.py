"""Does augmentation help? Train with and without it from the same seed and steps, evaluate both
on the same test rows, and report the paired-bootstrap difference of the primary metric and of
the per-row reference loss.

The core (:func:`ablate_augment`) is called by ``sftops ablate augment`` and by the Prefect flow
``flows/ablate.py``; it reads the splits written by the data stages and augments its own train
subset (so a low-resource setting, e.g. 100 classification rows, is one call).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sftops.config import Params
from sftops.errors import SftopsError

log = logging.getLogger("sftops.ablation")
ARMS = ("with_augmentation", "without_augmentation")
ABLATION_EXPERIMENT = "sftops-ablation"


@dataclass(frozen=True)
class AblationSetting:
    """Which rows the two arms train and are tested on (the rest comes from params)."""

    name: str = "default"
    train_rows: int | None = None  # None: the whole train split
    test_rows: int | None = None
    tasks: tuple[str, ...] = ()  # empty: every task
    languages: tuple[str, ...] = ()  # empty: every language
    seed: int = 0
    # Also test on the train split's rows this setting does not train on (low resource leaves
    # most of them unused; more test rows give a narrower CI). Rows sharing a near-dup cluster
    # with a training row are left out, as the split itself does.
    test_unused_train: bool = False
    # Train each arm this many times (train.seed, +1, ...) and average each test row's scores:
    # one seed's difference mixes augmentation's effect with data-order luck.
    seeds: int = 1


def _order_key(seed: int, row_id: str) -> str:
    return hashlib.blake2b(f"{seed}:{row_id}".encode(), digest_size=8).hexdigest()


def select_rows(
    table: pd.DataFrame,
    tasks: tuple[str, ...],
    languages: tuple[str, ...],
    limit: int | None,
    seed: int,
) -> pd.DataFrame:
    """Rows of the given tasks and languages, at most ``limit`` chosen by hash of the row id
    (stable: the same setting picks the same rows on every machine).

    >>> t = pd.DataFrame({"row_id": list("abcd"), "task": ["qa", "qa", "cls", "qa"],
    ...                   "lang": ["en", "zh", "en", "en"]})
    >>> select_rows(t, ("qa",), ("en",), None, 0)["row_id"].tolist()
    ['a', 'd']
    >>> len(select_rows(t, (), (), 3, 0))
    3
    """
    keep = pd.Series(True, index=table.index)
    if tasks:
        keep &= table["task"].isin(tasks)
    if languages:
        keep &= table["lang"].isin(languages)
    chosen = table[keep]
    if limit is not None and len(chosen) > limit:
        order = sorted(chosen.index, key=lambda i: _order_key(seed, str(chosen.at[i, "row_id"])))
        chosen = chosen.loc[sorted(order[:limit])]
    return chosen.reset_index(drop=True)


def unused_train_rows(pool: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``pool`` that are not in ``chosen`` and share no near-dup cluster with it.

    >>> pool = pd.DataFrame({"row_id": list("abcd"), "cluster_id": ["x", "x", "y", None]})
    >>> unused_train_rows(pool, pool.iloc[[0]])["row_id"].tolist()
    ['c', 'd']
    """
    clusters = pool["cluster_id"].fillna(pool["row_id"]) if "cluster_id" in pool else pool["row_id"]
    used = clusters[pool["row_id"].isin(chosen["row_id"])]
    keep = ~pool["row_id"].isin(chosen["row_id"]) & ~clusters.isin(used)
    return pool[keep].reset_index(drop=True)


def row_losses(
    model: Any, tokenizer: Any, test: pd.DataFrame, params: Params, batch_size: int = 8
) -> np.ndarray:
    """Mean per-token NLL of each test row's reference answer (NaN where nothing is scored):
    the per-row counterpart of ``evaluation.evaluate.reference_nll``, so loss gets a paired CI."""
    from sftops.modeling.data import encode_rows, single_rows
    from sftops.modeling.loss import row_mean_losses

    out = np.full(len(test), np.nan)
    scored: list[int] = []
    rows = []
    for i in range(len(test)):
        examples, _ = encode_rows(test.iloc[[i]], tokenizer, params.train.max_length)
        if examples:
            scored.append(i)
            rows.extend(single_rows(examples))
    losses = row_mean_losses(model, rows, batch_size, tokenizer.pad_token_id, model.device)
    out[scored] = losses
    return out


@dataclass
class ArmResult:
    name: str
    train_rows: int
    train_summary: dict[str, Any]
    row_scores: dict[str, list[float]]
    row_loss: list[float]
    accuracy: float | None
    seconds: float
    per_seed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AblationResult:
    setting: AblationSetting
    primary_metric: str
    test_rows: int
    test_set: str
    augment_summary: dict[str, Any]
    arms: dict[str, ArmResult] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for arm in out["arms"].values():  # per-row lists are for the artifact, not the table
            arm.pop("row_scores")
            arm.pop("row_loss")
        out["augment_summary"] = {
            k: v for k, v in self.augment_summary.items() if k not in {"examples"}
        }
        return out


def compare_arms(
    with_aug: ArmResult, without: ArmResult, metric: str, n_resamples: int
) -> dict[str, Any]:
    """Paired bootstrap of with minus without, for the primary metric and the per-row loss
    (rows where either loss is NaN are left out of the loss comparison)."""
    from sftops.evaluation.metrics import paired_bootstrap

    out: dict[str, Any] = {}
    a, b = np.asarray(with_aug.row_scores[metric]), np.asarray(without.row_scores[metric])
    boot = paired_bootstrap(a, b, n_resamples=n_resamples)
    out[metric] = {
        "with": boot["mean_a"],
        "without": boot["mean_b"],
        "diff": boot["mean_diff"],
        "ci": list(boot["ci_diff"]),
        "p_value": boot["p_value"],
    }
    la, lb = np.asarray(with_aug.row_loss), np.asarray(without.row_loss)
    ok = ~(np.isnan(la) | np.isnan(lb))
    boot = paired_bootstrap(la[ok], lb[ok], n_resamples=n_resamples)
    out["loss"] = {
        "with": boot["mean_a"],
        "without": boot["mean_b"],
        "diff": boot["mean_diff"],  # negative = augmentation lowered the loss
        "ci": list(boot["ci_diff"]),
        "p_value": boot["p_value"],
        "rows": int(ok.sum()),
    }
    seeds = list(zip(with_aug.per_seed, without.per_seed, strict=True))
    out["per_seed"] = [
        {
            "seed": w["seed"],
            **{
                key: w[key] - o[key]
                for key in (metric, "loss")
                if w.get(key) is not None and o.get(key) is not None
            },
        }
        for w, o in seeds
    ]
    out["verdict"] = verdict(
        out[metric]["ci"],
        out["loss"]["ci"],
        [d[metric] for d in out["per_seed"] if metric in d],
        [d["loss"] for d in out["per_seed"] if "loss" in d],
    )
    return out


def verdict(
    metric_ci: list[float],
    loss_ci: list[float],
    metric_by_seed: list[float] | None = None,
    loss_by_seed: list[float] | None = None,
) -> str:
    """One word for the table: ``helps`` / ``hurts`` when a CI excludes 0, else ``no_difference``.

    With several seeds, a CI counts only when most seeds' own differences have its sign: the
    bootstrap resamples rows, so one lucky seed can move a CI without the others agreeing.

    >>> verdict([0.01, 0.2], [-0.1, 0.05]), verdict([-0.1, 0.1], [0.01, 0.03])
    ('helps', 'hurts')
    >>> verdict([-0.1, 0.1], [-0.2, 0.1])
    'no_difference'
    >>> verdict([-0.1, 0.1], [-0.09, -0.01], [0.02, -0.02, -0.01], [0.03, -0.16, 0.01])
    'no_difference'
    >>> verdict([-0.1, 0.1], [-0.09, -0.01], [0.02, -0.02, -0.01], [-0.03, -0.16, 0.01])
    'helps'
    """

    def most_seeds(diffs: list[float] | None, sign: int) -> bool:
        return not diffs or sum(1 for d in diffs if d * sign > 0) * 2 > len(diffs)

    better_metric = metric_ci[0] > 0 and most_seeds(metric_by_seed, 1)
    worse_metric = metric_ci[1] < 0 and most_seeds(metric_by_seed, -1)
    lower_loss = loss_ci[1] < 0 and most_seeds(loss_by_seed, -1)
    higher_loss = loss_ci[0] > 0 and most_seeds(loss_by_seed, 1)
    if better_metric or (lower_loss and metric_ci[1] >= 0):
        return "helps"
    if worse_metric or higher_loss:
        return "hurts"
    return "no_difference"


def _train_and_evaluate(
    name: str,
    params: Params,
    train_table: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    out_dir: Path,
) -> ArmResult:
    from sftops.evaluation.evaluate import evaluate_model
    from sftops.modeling.models import load_causal_lm, load_tokenizer
    from sftops.modeling.train import train

    started = time.perf_counter()
    run = out_dir / name
    arm_params = params.model_copy(
        update={
            "paths": params.paths.model_copy(
                update={"model_dir": str(run / "model"), "checkpoints_dir": str(run / "ck")}
            ),
            "train": params.train.model_copy(update={"use_augmented": name == ARMS[0]}),
        }
    )
    log.info("%s: training on %d rows", name, len(train_table))
    result = train(arm_params, train_table, val, progress=False)
    model_dir = Path(result.model_dir)
    evaluated = evaluate_model(name, model_dir, test, arm_params)
    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, tokenizer=tokenizer)
    losses = row_losses(model, tokenizer, test, arm_params)
    accuracy = evaluated.classification["accuracy"] if evaluated.classification else None
    return ArmResult(
        name=name,
        train_rows=len(train_table),
        train_summary=result.summary(),
        row_scores={k: [float(x) for x in v] for k, v in evaluated.row_scores.items()},
        row_loss=[float(x) for x in losses],
        accuracy=accuracy,
        seconds=time.perf_counter() - started,
    )


def average_seeds(runs: list[ArmResult], metric: str, first_seed: int) -> ArmResult:
    """One arm from its runs under successive seeds: each row's scores and loss averaged over
    the runs (the paired bootstrap then resamples rows of those means), each run's own means
    kept in ``per_seed``."""
    per_seed = [
        {
            "seed": first_seed + k,
            metric: float(np.mean(run.row_scores[metric])) if metric in run.row_scores else None,
            "loss": float(np.nanmean(run.row_loss)) if np.isfinite(run.row_loss).any() else None,
            "accuracy": run.accuracy,
        }
        for k, run in enumerate(runs)
    ]
    losses = np.array([run.row_loss for run in runs], dtype=float)
    finite = np.isfinite(losses).any(axis=0)
    accuracies = [run.accuracy for run in runs if run.accuracy is not None]
    return ArmResult(
        name=runs[0].name,
        train_rows=runs[0].train_rows,
        train_summary=runs[0].train_summary,
        row_scores={
            key: [float(x) for x in np.mean([run.row_scores[key] for run in runs], axis=0)]
            for key in runs[0].row_scores
        },
        row_loss=[
            float(np.nanmean(losses[:, i])) if finite[i] else math.nan
            for i in range(losses.shape[1])
        ],
        accuracy=float(np.mean(accuracies)) if accuracies else None,
        seconds=sum(run.seconds for run in runs),
        per_seed=per_seed,
    )


def ablate_augment(params: Params, setting: AblationSetting, out_dir: str | Path) -> AblationResult:
    """Train both arms on the setting's rows (augmented or not), evaluate on the same test rows."""
    from sftops.augment.augment import augment_table
    from sftops.evaluation.evaluate import test_set_fingerprint
    from sftops.io import read_table

    if setting.seeds < 1:
        raise SftopsError(
            f"ablation setting {setting.name!r}: seeds must be >= 1, not {setting.seeds}"
        )
    paths = params.paths
    splits = {}
    for split in ("train", "validation", "test"):
        path = Path(paths.split(split))
        if not path.exists():
            raise SftopsError(
                f"{split} split missing (run `sftops run` or `dvc repro split`)", file=path
            )
        splits[split] = read_table(path)
    train_rows = select_rows(
        splits["train"], setting.tasks, setting.languages, setting.train_rows, setting.seed
    )
    val = select_rows(splits["validation"], setting.tasks, setting.languages, None, setting.seed)
    test = select_rows(splits["test"], setting.tasks, setting.languages, None, setting.seed)
    if setting.test_unused_train:
        pool = select_rows(splits["train"], setting.tasks, setting.languages, None, setting.seed)
        test = pd.concat([test, unused_train_rows(pool, train_rows)], ignore_index=True)
    test = select_rows(test, (), (), setting.test_rows, setting.seed)
    test = test[test["output"].fillna("").str.strip() != ""].reset_index(drop=True)
    if train_rows.empty or test.empty:
        raise SftopsError(
            f"ablation setting {setting.name!r} selects {len(train_rows)} train and "
            f"{len(test)} test rows: both must be non-empty"
        )
    cfg = params.augment.model_copy(update={"enabled": True})
    augmented = augment_table(train_rows, cfg, paths.cache_dir)
    out = Path(out_dir)
    result = AblationResult(
        setting=setting,
        primary_metric=params.promote.primary_metric,
        test_rows=len(test),
        test_set=test_set_fingerprint(test["row_id"].tolist()),
        augment_summary=augmented.summary(),
    )
    tables = {ARMS[0]: augmented.table, ARMS[1]: train_rows}
    metric = result.primary_metric
    for name in ARMS:
        runs = []
        for k in range(setting.seeds):
            seeded = params.model_copy(
                update={"train": params.train.model_copy(update={"seed": params.train.seed + k})}
            )
            runs.append(
                _train_and_evaluate(name, seeded, tables[name], val, test, out / f"seed{k}")
            )
        result.arms[name] = average_seeds(runs, metric, params.train.seed)
    if metric not in result.arms[ARMS[0]].row_scores:
        raise SftopsError(
            f"promote.primary_metric {metric!r} has no per-row score "
            f"(per-row metrics: {', '.join(result.arms[ARMS[0]].row_scores)})"
        )
    result.comparison = compare_arms(
        result.arms[ARMS[0]], result.arms[ARMS[1]], metric, params.evaluate.bootstrap_resamples
    )
    return result


def table_markdown(results: list[dict[str, Any]]) -> str:
    """The ablation table: one line per setting, the differences with their 95% CIs."""
    lines = [
        "| setting | train rows (with aug) | test rows | steps | seeds | metric | without | with | "
        "diff [95% CI] | loss without | loss with | loss diff [95% CI] | verdict |",
        "|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|---|",
    ]
    for r in results:
        c, metric = r["comparison"], r["primary_metric"]
        m, loss = c[metric], c["loss"]
        arms = r["arms"]
        lines.append(
            f"| {r['setting']['name']} | {arms[ARMS[1]]['train_rows']} "
            f"({arms[ARMS[0]]['train_rows']}) | {r['test_rows']} | "
            f"{arms[ARMS[0]]['train_summary']['steps']} | {r['setting'].get('seeds', 1)} | "
            f"{metric} | {m['without']:.4f} | "
            f"{m['with']:.4f} | {m['diff']:+.4f} [{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}] | "
            f"{loss['without']:.4f} | {loss['with']:.4f} | {loss['diff']:+.4f} "
            f"[{loss['ci'][0]:+.4f}, {loss['ci'][1]:+.4f}] | {c['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def log_to_mlflow(result: AblationResult, params: Params, artifact: Path) -> str | None:
    """One MLflow run per ablation: setting as params, both arms and the differences as
    metrics, the full result JSON as an artifact. Returns the run id."""
    from mlflow.entities import Metric, Param

    from sftops.mlops import registry

    client = registry.mlflow_client()
    experiment = registry.ensure_experiment(ABLATION_EXPERIMENT)
    run = client.create_run(experiment, run_name=f"ablate-augment-{result.setting.name}")
    now = int(time.time() * 1000)
    setting = {f"setting.{k}": json.dumps(v) for k, v in asdict(result.setting).items()}
    settings = {
        **setting,
        "primary_metric": result.primary_metric,
        "train.max_steps": str(params.train.max_steps),
        "train.seed": str(params.train.seed),
        "test_set": result.test_set,
    }
    metrics: dict[str, float] = {"test_rows": result.test_rows}
    for key in (result.primary_metric, "loss"):
        c = result.comparison[key]
        metrics.update(
            {
                f"{key}.with": c["with"],
                f"{key}.without": c["without"],
                f"{key}.diff": c["diff"],
                f"{key}.diff_ci_low": c["ci"][0],
                f"{key}.diff_ci_high": c["ci"][1],
                f"{key}.p_value": c["p_value"],
            }
        )
    for name, arm in result.arms.items():
        metrics[f"{name}.train_rows"] = arm.train_rows
        for seed_run in arm.per_seed:
            for key in (result.primary_metric, "loss"):
                if seed_run.get(key) is not None:
                    metrics[f"{name}.seed{seed_run['seed']}.{key}"] = seed_run[key]
        if arm.accuracy is not None:
            metrics[f"{name}.accuracy"] = arm.accuracy
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)],
        params=[Param(k, v[:500]) for k, v in settings.items()],
        tags=[],
    )
    client.set_tag(run.info.run_id, "verdict", result.comparison["verdict"])
    client.log_artifact(run.info.run_id, str(artifact))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def run_ablation(
    params: Params,
    setting: AblationSetting,
    out_dir: str | Path | None = None,
    mlflow: bool = True,
) -> dict[str, Any]:
    """The edge: run the ablation, write ``<reports>/ablation/<name>.json`` (+ ``.md`` and the
    per-row scores), log it to MLflow as one run; models go to a folder that is removed after."""
    import shutil
    import tempfile

    from sftops.io import write_json, write_text

    reports = Path(out_dir) if out_dir else Path(params.paths.reports_dir) / "ablation"
    work = Path(tempfile.mkdtemp(prefix="sftops-ablation-"))
    try:
        result = ablate_augment(params, setting, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = result.to_dict()
    target = reports / f"{setting.name}.json"
    write_json(summary, target)
    write_json(
        {n: {"row_scores": a.row_scores, "row_loss": a.row_loss} for n, a in result.arms.items()},
        reports / f"{setting.name}.rows.json",
    )
    write_text(table_markdown([summary]), reports / f"{setting.name}.md")
    summary["mlflow_run_id"] = log_to_mlflow(result, params, target) if mlflow else None
    write_json(summary, target)  # again, with the run id
    return summary
