"""The promotion gate: a pure decision from recorded metrics, with a reason line per rule.

:func:`should_promote` compares the candidate with the current champion (or, for the first
model, with the base model) using the metrics that the evaluate stage wrote
(``reports/metrics.json``): per-model means and the paired-bootstrap differences with their 95%
confidence intervals. It imports nothing from MLflow or Prefect; ``sftops.mlops.registry``
records the decision and moves the aliases.

Rules (all from :class:`GateConfig`):

- **same test set** (``require_same_test_set``): numbers computed on different held-out rows
  never compare; the decision is refused before any metric is read.
- **improvement** (``min_improvement``, the ``primary_metric`` always among them): candidate
  minus reference must be *strictly* greater than the threshold (a tie does not promote), and
  with ``require_significant`` the lower bound of the paired-bootstrap CI of the difference must
  be > 0. A metric whose difference has no CI (e.g. ``accuracy``, ``perplexity``, or a champion
  that was not re-evaluated on this test set) fails when significance is required.
- **guards** (``max_regression``): the candidate may be worse than the reference by at most the
  tolerance (point estimate).
- ``lower_is_better`` metrics (``perplexity``, ``reference_nll``) are compared with the sign
  flipped, so "improvement" always means "better".
- a metric missing (or NaN) on either side fails its rule with ``metric X missing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sftops.config import GateConfig


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: ``promote`` and one human-readable line per rule checked."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    compared_to: str = ""  # "champion", "base", "manual" or "" when nothing could be compared

    def summary(self) -> str:
        verdict = "promote" if self.promote else "do not promote"
        failed = [r for r in self.reasons if not r.endswith(": pass")]
        detail = "; ".join(failed) if failed and not self.promote else "all rules pass"
        return f"{verdict} (vs {self.compared_to or 'nothing'}): {detail}"

    @classmethod
    def manual(cls, reason: str, by: str | None = None) -> Decision:
        """A human decision (``sftops promote --version N``), recorded like the gate's."""
        who = f" by {by}" if by else ""
        return cls(True, [f"manual promotion{who}: {reason}"], "manual")


def _value(metrics: dict[str, Any], metric: str) -> float | None:
    raw = metrics.get(metric)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def _fmt(x: float) -> str:
    """Signed, three decimals; a tie reads +0.000 also where the sign flipped it to -0.0.

    >>> _fmt(-1.0 * 0.0), _fmt(-0.0125)
    ('+0.000', '-0.013')
    """
    return f"{x + 0.0:+.3f}"


def _ci_of(differences: dict[str, Any], metric: str) -> tuple[float, float] | None:
    entry = differences.get(metric)
    if not isinstance(entry, dict):
        return None
    ci = entry.get("ci")
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return None
    try:
        low, high = float(ci[0]), float(ci[1])
    except (TypeError, ValueError):
        return None
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def _orientation(metric: str, gate: GateConfig) -> tuple[float, str]:
    """The sign that makes an improvement positive, and how the rule lines say so."""
    if metric in gate.lower_is_better:
        return -1.0, " (lower is better)"
    return 1.0, ""


def _missing(metric: str, cand: float | None, ref_name: str) -> str:
    side = "candidate" if cand is None else ref_name
    return f"metric {metric} missing ({side}): fail"


def _improvement_rule(
    metric: str,
    threshold: float,
    candidate: dict[str, Any],
    reference: dict[str, Any],
    differences: dict[str, Any],
    ref_name: str,
    gate: GateConfig,
) -> tuple[bool, str]:
    cand, ref = _value(candidate, metric), _value(reference, metric)
    if cand is None or ref is None:
        return False, _missing(metric, cand, ref_name)
    sign, direction = _orientation(metric, gate)
    gain = sign * (cand - ref)
    ci = _ci_of(differences, metric)
    ci_text = ""
    if ci is not None:
        low, high = sorted((sign * ci[0], sign * ci[1]))
        ci_text = f" (95% CI [{_fmt(low)}, {_fmt(high)}])"
    line = f"{metric}{direction}: {_fmt(gain)} vs {ref_name}{ci_text} > {_fmt(threshold)}"
    if not gain > threshold:
        return False, f"{line}: fail"
    if gate.require_significant:
        if ci is None:
            return (
                False,
                f"{line}: fail (no paired-bootstrap CI vs {ref_name} to test significance)",
            )
        low = min(sign * ci[0], sign * ci[1])
        if not low > 0:
            return False, f"{line}: fail (not significant: CI lower bound {_fmt(low)} ≤ 0)"
    return True, f"{line}: pass"


def _guard_rule(
    metric: str,
    tolerance: float,
    candidate: dict[str, Any],
    reference: dict[str, Any],
    ref_name: str,
    gate: GateConfig,
) -> tuple[bool, str]:
    cand, ref = _value(candidate, metric), _value(reference, metric)
    if cand is None and ref is None and gate.skip_missing_guards:
        return True, f"{metric}: absent from both models, guard skipped: pass"
    if cand is None or ref is None:
        return False, _missing(metric, cand, ref_name)
    sign, direction = _orientation(metric, gate)
    change = sign * (cand - ref)  # > 0 means better
    line = (
        f"{metric}{direction}: {_fmt(change)} vs {ref_name} (largest allowed drop {tolerance:.3f})"
    )
    return (True, f"{line}: pass") if -change <= tolerance else (False, f"{line}: fail")


def should_promote(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    base: dict[str, Any] | None,
    differences: dict[str, Any],
    gate: GateConfig,
    *,
    candidate_test_set: str | None = None,
    reference_test_set: str | None = None,
) -> Decision:
    """Decide whether ``candidate`` replaces ``champion`` (or, with no champion, becomes the
    first champion by beating ``base``).

    ``candidate`` / ``champion`` / ``base`` are per-model metric dicts (``metrics["models"][m]``).
    ``differences`` is the whole ``metrics["differences"]`` mapping; the rule uses
    ``candidate_vs_champion`` or ``candidate_vs_base``. Test-set fingerprints come from the
    keyword arguments, else from a ``"test_set"`` key of the candidate / reference dicts.

    >>> gate = GateConfig(require_significant=False, max_regression={})
    >>> should_promote({"token_f1": 0.5}, None, {"token_f1": 0.4}, {}, gate,
    ...                candidate_test_set="t", reference_test_set="t").promote
    True
    """
    if champion is not None:
        reference, ref_name = champion, "champion"
    elif base is not None:
        reference, ref_name = base, "base"
    else:
        return Decision(False, ["no champion and no base-model metrics to compare against: fail"])
    reasons: list[str] = []
    if gate.require_same_test_set:
        cand_set = candidate_test_set or candidate.get("test_set")
        ref_set = reference_test_set or reference.get("test_set")
        if not cand_set or not ref_set:
            return Decision(
                False,
                [
                    f"test set fingerprint missing (candidate {cand_set}, {ref_name} {ref_set})"
                    ": fail"
                ],
                ref_name,
            )
        if cand_set != ref_set:
            return Decision(
                False,
                [
                    f"different test sets (candidate {cand_set}, {ref_name} {ref_set}): "
                    "metrics do not compare: fail"
                ],
                ref_name,
            )
        reasons.append(f"same test set {cand_set}: pass")
    diffs = differences.get(f"candidate_vs_{ref_name}") or {}
    ok = True
    ordered = [gate.primary_metric, *(m for m in gate.min_improvement if m != gate.primary_metric)]
    for metric in ordered:
        passed, line = _improvement_rule(
            metric, gate.min_improvement[metric], candidate, reference, diffs, ref_name, gate
        )
        ok &= passed
        reasons.append(line)
    for metric, tolerance in gate.max_regression.items():
        passed, line = _guard_rule(metric, tolerance, candidate, reference, ref_name, gate)
        ok &= passed
        reasons.append(line)
    return Decision(ok, reasons, ref_name)


def decide_from_metrics(
    metrics: dict[str, Any],
    gate: GateConfig,
    champion_metrics: dict[str, Any] | None = None,
) -> Decision:
    """:func:`should_promote` on an evaluate report (``reports/metrics.json``).

    The champion is the report's ``models.champion`` (evaluated on the same rows, with paired
    CIs) when present, else ``champion_metrics`` (e.g. ``registry.load_champion_metrics``; its
    own ``test_set`` must match, and without paired CIs a significance rule cannot pass).
    """
    models = metrics.get("models", {})
    test_set = metrics.get("test_set")
    champion = models.get("champion")
    reference_set = test_set
    if champion is None and champion_metrics is not None:
        champion = champion_metrics
        reference_set = champion_metrics.get("test_set")
    reference_set = reference_set if champion is not None else test_set
    return should_promote(
        models.get("candidate", {}),
        champion,
        models.get("base"),
        metrics.get("differences", {}),
        gate,
        candidate_test_set=test_set,
        reference_test_set=reference_set,
    )
