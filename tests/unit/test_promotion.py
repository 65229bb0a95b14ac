"""Table-driven tests of the pure promotion gate (no MLflow)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from sftops.mlops.promotion import Decision, GateConfig, decide_from_metrics, should_promote

BASE = {"exact_match": 0.10, "token_f1": 0.30, "accuracy": 0.50, "perplexity": 20.0}
CHAMP = {"exact_match": 0.20, "token_f1": 0.40, "accuracy": 0.70, "perplexity": 12.0}


def diff(d: float, low: float, high: float) -> dict[str, Any]:
    return {"diff": d, "ci": [low, high], "p_value": 0.01}


@dataclass
class Case:
    name: str
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    differences: dict[str, Any]
    promote: bool
    expect: list[str]  # substrings that must appear in the reasons
    gate: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] | None = field(default_factory=lambda: dict(BASE))
    sets: tuple[str | None, str | None] = ("t1", "t1")


CASES = [
    Case(
        "first model beats base",
        {"exact_match": 0.15, "token_f1": 0.38, "accuracy": 0.55},
        None,
        {"candidate_vs_base": {"token_f1": diff(0.08, 0.05, 0.11)}},
        True,
        ["same test set t1: pass", "token_f1: +0.080 vs base (95% CI [+0.050, +0.110]) > +0.000"],
    ),
    Case(
        "first model loses to base",
        {"exact_match": 0.10, "token_f1": 0.25, "accuracy": 0.50},
        None,
        {"candidate_vs_base": {"token_f1": diff(-0.05, -0.08, -0.02)}},
        False,
        ["token_f1: -0.050 vs base", ": fail"],
    ),
    Case(
        "improvement not significant",
        {"exact_match": 0.20, "token_f1": 0.42, "accuracy": 0.70},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.02, -0.01, 0.05)}},
        False,
        ["not significant: CI lower bound -0.010"],
    ),
    Case(
        "not significant is fine when significance is not required",
        {"exact_match": 0.20, "token_f1": 0.42, "accuracy": 0.70},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.02, -0.01, 0.05)}},
        True,
        ["token_f1: +0.020 vs champion"],
        gate={"require_significant": False},
    ),
    Case(
        "guard regression beyond tolerance",
        {"exact_match": 0.15, "token_f1": 0.50, "accuracy": 0.70},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.10, 0.07, 0.13)}},
        False,
        ["exact_match: -0.050 vs champion (largest allowed drop 0.020): fail", "token_f1: +0.100"],
    ),
    Case(
        "guard regression within tolerance",
        {"exact_match": 0.19, "token_f1": 0.50, "accuracy": 0.69},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.10, 0.07, 0.13)}},
        True,
        ["exact_match: -0.010 vs champion (largest allowed drop 0.020): pass"],
    ),
    Case(
        "lower-is-better metric improves",
        {"exact_match": 0.20, "token_f1": 0.40, "accuracy": 0.70, "perplexity": 10.0},
        CHAMP,
        {},
        True,
        ["perplexity (lower is better): +2.000 vs champion > +0.000: pass"],
        gate={
            "primary_metric": "perplexity",
            "min_improvement": {"perplexity": 0.0},
            "require_significant": False,
        },
    ),
    Case(
        "lower-is-better metric gets worse",
        {"exact_match": 0.20, "token_f1": 0.40, "accuracy": 0.70, "perplexity": 13.0},
        CHAMP,
        {},
        False,
        ["perplexity (lower is better): -1.000 vs champion > +0.000: fail"],
        gate={
            "primary_metric": "perplexity",
            "min_improvement": {"perplexity": 0.0},
            "require_significant": False,
        },
    ),
    Case(
        "lower-is-better guard with a CI flipped",
        {"exact_match": 0.20, "token_f1": 0.40, "accuracy": 0.70, "reference_nll": 1.5},
        {**CHAMP, "reference_nll": 2.0},
        {"candidate_vs_champion": {"reference_nll": diff(-0.5, -0.7, -0.3)}},
        True,
        ["reference_nll (lower is better): +0.500 vs champion (95% CI [+0.300, +0.700])"],
        gate={"primary_metric": "reference_nll", "min_improvement": {}},
    ),
    Case(
        "missing metric",
        {"exact_match": 0.20, "token_f1": 0.50},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.10, 0.07, 0.13)}},
        False,
        ["metric accuracy missing (candidate): fail"],
    ),
    Case(
        "NaN counts as missing",
        {"exact_match": 0.20, "token_f1": math.nan, "accuracy": 0.7},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.10, 0.07, 0.13)}},
        False,
        ["metric token_f1 missing (candidate): fail"],
    ),
    Case(
        "guard absent from both models may be skipped",
        {"exact_match": 0.20, "token_f1": 0.50},
        {"exact_match": 0.20, "token_f1": 0.40},
        {"candidate_vs_champion": {"token_f1": diff(0.10, 0.07, 0.13)}},
        True,
        ["accuracy: absent from both models, guard skipped: pass"],
        gate={"skip_missing_guards": True},
    ),
    Case(
        "different test sets",
        {"exact_match": 0.30, "token_f1": 0.60, "accuracy": 0.9},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.20, 0.15, 0.25)}},
        False,
        ["different test sets (candidate t2, champion t1)"],
        sets=("t2", "t1"),
    ),
    Case(
        "test set fingerprint missing",
        {"exact_match": 0.30, "token_f1": 0.60, "accuracy": 0.9},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.20, 0.15, 0.25)}},
        False,
        ["test set fingerprint missing"],
        sets=("t1", None),
    ),
    Case(
        "tie on the primary metric does not promote",
        dict(CHAMP),
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.0, 0.0, 0.0)}},
        False,
        ["token_f1: +0.000 vs champion (95% CI [+0.000, +0.000]) > +0.000: fail"],
    ),
    Case(
        "tie on a lower-is-better guard reads +0.000",
        {**CHAMP, "token_f1": 0.45},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.05, 0.01, 0.09)}},
        True,
        ["perplexity (lower is better): +0.000 vs champion (largest allowed drop 0.500): pass"],
        gate={"max_regression": {"perplexity": 0.5}},
    ),
    Case(
        "tie on a lower-is-better primary metric does not promote",
        dict(CHAMP),
        CHAMP,
        {},
        False,
        ["perplexity (lower is better): +0.000 vs champion > +0.000: fail"],
        gate={
            "primary_metric": "perplexity",
            "min_improvement": {"perplexity": 0.0},
            "require_significant": False,
        },
    ),
    Case(
        "tie on a guard passes",
        {**CHAMP, "token_f1": 0.45},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.05, 0.01, 0.09)}},
        True,
        ["exact_match: +0.000 vs champion", "accuracy: +0.000 vs champion"],
    ),
    Case(
        "minimum improvement above zero",
        {**CHAMP, "token_f1": 0.41},
        CHAMP,
        {"candidate_vs_champion": {"token_f1": diff(0.01, 0.005, 0.015)}},
        False,
        ["token_f1: +0.010 vs champion (95% CI [+0.005, +0.015]) > +0.020: fail"],
        gate={"min_improvement": {"token_f1": 0.02}},
    ),
    Case(
        "no paired CI against the champion",
        {**CHAMP, "token_f1": 0.50},
        CHAMP,
        {},
        False,
        ["no paired-bootstrap CI vs champion"],
    ),
    Case(
        "no champion and no base",
        {"token_f1": 0.5},
        None,
        {},
        False,
        ["no champion and no base-model metrics"],
        base=None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_should_promote(case: Case) -> None:
    gate = GateConfig(**case.gate)
    decision = should_promote(
        case.candidate,
        case.champion,
        case.base,
        case.differences,
        gate,
        candidate_test_set=case.sets[0],
        reference_test_set=case.sets[1],
    )
    text = "\n".join(decision.reasons)
    assert decision.promote is case.promote, text
    for fragment in case.expect:
        assert fragment in text, text
    # every reason line ends with its verdict
    assert all(line.endswith(": pass") or ": fail" in line for line in decision.reasons), text


def test_every_rule_contributes_a_line() -> None:
    gate = GateConfig(min_improvement={"token_f1": 0.0, "rouge_l": 0.0})
    cand = {**CHAMP, "token_f1": 0.5, "rouge_l": 0.5}
    diffs = {
        "candidate_vs_champion": {
            "token_f1": diff(0.1, 0.05, 0.15),
            "rouge_l": diff(0.1, 0.05, 0.15),
        }
    }
    decision = should_promote(
        cand, {**CHAMP, "rouge_l": 0.4}, BASE, diffs, gate,
        candidate_test_set="a", reference_test_set="a",
    )  # fmt: skip
    # test set + 2 improvement rules (primary first) + 2 guards
    assert len(decision.reasons) == 5
    assert decision.reasons[1].startswith("token_f1")
    assert decision.promote
    assert decision.summary().startswith("promote (vs champion)")


def test_primary_metric_is_always_a_rule() -> None:
    gate = GateConfig(primary_metric="rouge_l", min_improvement={"token_f1": 0.01})
    assert gate.min_improvement == {"token_f1": 0.01, "rouge_l": 0.0}


def test_gate_rejects_bad_thresholds() -> None:
    with pytest.raises(ValidationError):
        GateConfig(max_regression={"exact_match": -0.1})
    with pytest.raises(ValidationError):
        GateConfig(min_improvement={"token_f1": math.inf})
    with pytest.raises(ValidationError):
        GateConfig(unknown_key=1)  # type: ignore[call-arg]


def test_decide_from_metrics_prefers_the_re_evaluated_champion() -> None:
    metrics = {
        "test_set": "abc",
        "models": {"base": BASE, "candidate": {**CHAMP, "token_f1": 0.5}, "champion": CHAMP},
        "differences": {
            "candidate_vs_base": {"token_f1": diff(0.2, 0.1, 0.3)},
            "candidate_vs_champion": {"token_f1": diff(0.1, 0.05, 0.15)},
        },
    }
    decision = decide_from_metrics(metrics, GateConfig())
    assert decision.promote and decision.compared_to == "champion"
    # Registry metrics of a champion evaluated on other rows are refused.
    del metrics["models"]["champion"]  # type: ignore[attr-defined]
    stale = decide_from_metrics(metrics, GateConfig(), {**CHAMP, "test_set": "old"})
    assert not stale.promote and "different test sets" in stale.reasons[0]
    first = decide_from_metrics(metrics, GateConfig())
    assert first.promote and first.compared_to == "base"


def test_manual_decision() -> None:
    decision = Decision.manual("hotfix for a bad answer", by="alice")
    assert decision.promote and decision.compared_to == "manual"
    assert decision.reasons == ["manual promotion by alice: hotfix for a bad answer"]
