"""Builders shared by tests: canonical tables from a few literal rows."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from sftops.data.canonical import CANONICAL_COLUMNS, to_canonical


def canonical_table(records: list[dict[str, Any]], source: str = "test") -> pd.DataFrame:
    rows = [to_canonical(r, source, {}, 1_000_000) for r in records]
    return pd.DataFrame(rows, columns=CANONICAL_COLUMNS).astype(
        {c: "string" for c in CANONICAL_COLUMNS}
    )


ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def copy_repo(dest: Path) -> Path:
    """The repo's tracked and untracked (not ignored) files in a fresh git repo at ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def commit_all(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=repo, check=True)


# Settings that make a whole retrain take about a minute on CPU (tiny Llama from tests/assets).
TINY_PARAMS: dict[str, Any] = {
    "train.max_steps": 2,
    "train.max_length": 64,
    "train.eval_every": 1,
    "train.save_every": 1,
    "train.max_eval_rows": 8,
    "augment.max_rows": 10,
    "augment.filter.fluency_model": None,  # the tiny runs do not load SmolLM2 to score fluency
    "evaluate.max_rows": 8,
    "evaluate.generation.max_new_tokens": 8,
    "evaluate.bootstrap_resamples": 50,
    "evaluate.human_eval_rows": 4,
}


TINY_SOURCE_WEIGHT = 0.25  # a quarter of each sample source (by row hash): ~390 rows


def tiny_repo(base: Path, **extra: Any) -> Path:
    """A committed git + DVC copy of the project under ``base`` whose params.yaml trains a tiny
    Llama (built under ``base/models``) with :data:`TINY_PARAMS` (and ``extra`` dotted keys)."""
    import yaml

    from sftops.config import apply_overrides
    from tests.assets.tiny_models import tiny_llama

    model = tiny_llama(base / "models")
    repo = copy_repo(base / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params = apply_overrides(params, {**TINY_PARAMS, "train.base_model": str(model), **extra})
    for source in params["ingest"]["sources"]:
        source["weight"] = TINY_SOURCE_WEIGHT
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    commit_all(repo, "tiny settings")
    return repo
