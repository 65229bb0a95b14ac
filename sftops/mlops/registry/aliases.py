"""Aliases: ``challenger`` is the newest registered version, ``champion`` the one served.

:func:`promote` records the gate's decision on the version (tags + description) and, when it
says so, moves alias ``champion``; the champion it replaces is pushed on the model-level tag
``previous_champion`` (a JSON list) so that :func:`rollback` can move the alias back. Alias moves
are serialised by :func:`alias_lock`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sftops.errors import SftopsError
from sftops.mlops.promotion import Decision
from sftops.mlops.registry.store import get_version, mlflow_client, store_root
from sftops.mlops.registry.values import MAX_DESCRIPTION, now, tag_value, truncate

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"


def champion_version(name: str, *, root: Path | None = None) -> ModelVersion | None:
    """The version alias ``champion`` points at, or ``None`` (no such model or alias)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(root)
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _stack(client: MlflowClient, name: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        raw = client.get_registered_model(name).tags.get(PREVIOUS_CHAMPION_TAG, "[]")
    except MlflowException:
        raise SftopsError(f"no registered model {name}") from None
    try:
        stack = json.loads(raw)
    except ValueError:
        stack = []
    return [str(v) for v in stack] if isinstance(stack, list) else []


def append_description(client: MlflowClient, mv: ModelVersion, entry: str) -> None:
    """Append an entry; past :data:`MAX_DESCRIPTION` (the SQL column holds 5000 characters)
    the oldest entries after the first (the registration) are dropped, the tags keep the rest."""
    entries = [e for e in (mv.description or "").split("\n\n") if e] + [entry]
    while len("\n\n".join(entries)) > MAX_DESCRIPTION and len(entries) > 2:
        del entries[1]
    text = truncate("\n\n".join(entries), MAX_DESCRIPTION)
    client.update_model_version(mv.name, mv.version, description=text)


@contextmanager
def alias_lock(root: Path | None = None) -> Iterator[None]:
    """Alias moves are the one shared mutable thing of concurrent runs: one at a time (an flock
    in the project's `.sftops/`; with a shared server, runs on other machines are not covered)."""
    import fcntl

    folder = store_root(root) / ".sftops"
    folder.mkdir(exist_ok=True)
    with (folder / "registry.lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote(
    name: str,
    version: str | int,
    decision: Decision,
    reason: str,
    approved_by: str | None = None,
    *,
    root: Path | None = None,
) -> bool:
    """Record ``decision`` on ``name`` version ``version`` and, if it promotes, move alias
    ``champion`` there; returns whether the alias moved to (or already was on) that version.

    Version tags ``promotion.decision`` (promoted / rejected), ``promotion.reasons`` (one rule
    per line), ``promotion.reason``, ``promotion.compared_to``, ``promotion.approved_by``,
    ``promotion.at``; the same is appended to the version description. The replaced champion
    is pushed on the model tag ``previous_champion`` (JSON list) and tagged ``superseded_by``.
    A version that does not exist: ``SftopsError("model X has no version N")``.
    """
    with alias_lock(root):
        return _promote(name, version, decision, reason, approved_by, root)


def _promote(
    name: str,
    version: str | int,
    decision: Decision,
    reason: str,
    approved_by: str | None,
    root: Path | None,
) -> bool:
    client = mlflow_client(root)
    mv = get_version(client, name, version)
    at = now()
    verdict = "promoted" if decision.promote else "rejected"
    tags = {
        "promotion.decision": verdict,
        "promotion.reasons": tag_value("\n".join(decision.reasons)),
        "promotion.reason": tag_value(reason),
        "promotion.compared_to": decision.compared_to or "-",
        "promotion.approved_by": approved_by or "-",
        "promotion.at": at,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, mv.version, key, value)
    who = f", approved by {approved_by}" if approved_by else ""
    rules = "".join(f"\n- {r}" for r in decision.reasons)
    line = f"[{at}] {verdict} as {CHAMPION}{who}: {reason}{rules}"
    append_description(client, mv, line)
    if not decision.promote:
        return False
    current = champion_version(name, root=root)
    if current is not None and str(current.version) == str(mv.version):
        return True
    if current is not None:
        stack = [*_stack(client, name), str(current.version)]
        client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, json.dumps(stack))
        client.set_model_version_tag(name, current.version, "superseded_by", str(mv.version))
        client.set_model_version_tag(name, current.version, "superseded.at", at)
    client.set_registered_model_alias(name, CHAMPION, str(mv.version))
    log.info("%s: champion -> version %s (%s)", name, mv.version, reason)
    return True


def rollback(name: str, reason: str, *, root: Path | None = None) -> str:
    """Move alias ``champion`` back to the previous champion (popped from the model tag
    ``previous_champion``); returns that version. Both versions get ``rollback.*`` tags and a
    description line. No previous champion: ``SftopsError`` (one line)."""
    with alias_lock(root):
        return _rollback(name, reason, root)


def _rollback(name: str, reason: str, root: Path | None) -> str:
    client = mlflow_client(root)
    stack = _stack(client, name)
    if not stack:
        raise SftopsError(f"model {name} has no previous champion to roll back to")
    target = get_version(client, name, stack[-1])
    current = champion_version(name, root=root)
    at = now()
    client.set_registered_model_alias(name, CHAMPION, str(target.version))
    client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, json.dumps(stack[:-1]))
    from_version = str(current.version) if current is not None else "-"
    for key, value in {
        "rollback.restored_at": at,
        "rollback.reason": tag_value(reason),
        "rollback.replaced": from_version,
    }.items():
        client.set_model_version_tag(name, target.version, key, value)
    append_description(
        client, target, f"[{at}] restored as {CHAMPION} (rollback from {from_version}): {reason}"
    )
    if current is not None:
        for key, value in {
            "rollback.demoted_at": at,
            "rollback.reason": tag_value(reason),
            "rollback.restored": str(target.version),
        }.items():
            client.set_model_version_tag(name, current.version, key, value)
        append_description(
            client,
            current,
            f"[{at}] rolled back: {CHAMPION} moved to version {target.version}: {reason}",
        )
    log.info("%s: rollback, champion -> version %s (%s)", name, target.version, reason)
    return str(target.version)
