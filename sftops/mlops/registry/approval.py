"""A human in the promotion loop: the Prefect pause form a reviewer answers in the UI."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sftops.mlops.promotion import Decision
from sftops.mlops.registry.aliases import CHAMPION


class Approval(BaseModel):
    """A reviewer's answer to a promotion request (the Prefect pause form)."""

    approved: bool = Field(False, description="Promote this version to champion.")
    reviewer: str = Field("", description="Who decided (name or e-mail).")
    comment: str = Field("", description="Why; recorded on the model version.")


def approval_request_text(name: str, version: str | int, decision: Decision) -> str:
    """Markdown shown to the reviewer: the version and the gate's reason lines."""
    lines = [
        f"### Promote {name} version {version} to `{CHAMPION}`?",
        "",
        f"Gate: **{'pass' if decision.promote else 'fail'}** (vs {decision.compared_to or '-'})",
        "",
        *(f"- {r}" for r in decision.reasons),
    ]
    return "\n".join(lines)


def request_approval(
    name: str, version: str | int, decision: Decision, timeout_s: int = 3600
) -> Approval:
    """Pause the current Prefect flow run until a reviewer answers in the UI; returns the answer.

    Must be called inside a flow run: it calls
    ``prefect.flow_runs.pause_flow_run(wait_for_input=<Approval form>, timeout=timeout_s)``
    with :func:`approval_request_text` as the form's description (Prefect is imported here,
    never at module level). A pause that times out raises Prefect's error; the caller records
    that as "not approved". Then: ``promote(name, version, decision, approval.comment,
    approved_by=approval.reviewer)`` when ``approval.approved``.
    """
    from prefect.flow_runs import pause_flow_run
    from prefect.input import RunInput

    form = RunInput.subclass_from_base_model_type(Approval).with_initial_data(
        description=approval_request_text(name, version, decision),
        approved=False,
        reviewer="",
        comment="",
    )
    answer = pause_flow_run(wait_for_input=form, timeout=timeout_s)
    return Approval.model_validate(answer.model_dump(include=set(Approval.model_fields)))
