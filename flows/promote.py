"""Gate a registered version and, when approval is required, wait for a reviewer in the UI."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from sftops.config import load_params
from sftops.mlops.promotion import Decision


def _record(name: str, version: str, out: dict[str, Any]) -> None:
    verdict = "promoted to champion" if out["promoted"] else "not promoted"
    lines = "\n".join(f"- {r}" for r in out["reasons"])
    create_markdown_artifact(f"# {name} v{version}: {verdict}\n\n{lines}\n", key="promotion")


@flow(name="promote", log_prints=True)
def promote(
    version: str,
    params_file: str = "params.yaml",
    require_approval: bool | None = Field(
        None, description="Pause for a reviewer when the gate passes (default: params.yaml)."
    ),
) -> dict[str, Any]:
    """The metric gate on `version`, from the evaluation recorded with that version in the
    registry (never a report on disk); with approval required and a passing gate the run pauses
    with an Approval form until someone resumes it in the UI."""
    from sftops.mlops import registry
    from sftops.mlops.release import decide, run_promote

    params = load_params(params_file)
    name = params.register_.model_name
    version = str(version).removeprefix("v")
    needs_approval = (
        params.promote.require_approval if require_approval is None else require_approval
    )
    decision = decide(params, version)
    print(decision.summary())
    if not (needs_approval and decision.promote):
        out = run_promote(params, version)
        _record(name, version, out)
        return out
    try:
        answer = registry.request_approval(
            name, version, decision, timeout_s=params.promote.approval_timeout_s
        )
    except Exception as exc:  # a pause that timed out (or was aborted): not approved
        print(f"no approval: {type(exc).__name__}: {exc}")
        answer = registry.Approval(approved=False, reviewer="-", comment=f"no answer ({exc})")
    reviewer = answer.reviewer or "unknown reviewer"
    if answer.approved:
        final = decision
        reason = answer.comment or "approved"
    else:
        final = Decision(
            False, [*decision.reasons, f"rejected by {reviewer}"], decision.compared_to
        )
        reason = f"rejected: {answer.comment}" if answer.comment else "rejected"
    moved = registry.promote(name, version, final, reason, approved_by=reviewer)
    out = {
        "model_name": name,
        "version": version,
        "promoted": moved,
        "reasons": final.reasons,
        "approved_by": reviewer,
        "approved": answer.approved,
    }
    _record(name, version, out)
    return out


if __name__ == "__main__":
    import sys

    promote(sys.argv[1])
