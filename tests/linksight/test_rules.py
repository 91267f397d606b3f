"""Rule changes checked by `apply_rule_changes` before the hub stores them."""

from __future__ import annotations

import pytest

from linksight.rules import (
    ANALYSES,
    CollaborationRules,
    RuleChangeError,
    apply_rule_changes,
)

CURRENT = CollaborationRules().model_dump(mode="json")


def test_rule_change_applied() -> None:
    rules = apply_rule_changes(CURRENT, {"min_count": 15})

    assert rules.min_count == 15
    assert rules.min_stations == CURRENT["min_stations"]


def test_rule_change_unknown_name_suggests_match() -> None:
    with pytest.raises(RuleChangeError) as raised:
        apply_rule_changes(CURRENT, {"min_cont": 15, "zzz": 1})

    message = str(raised.value)
    assert "unknown rules 'min_cont' (did you mean 'min_count'?), 'zzz';" in message
    assert "the rules are: min_count, min_stations" in message
    assert "budget_period_days" in message


def test_rule_change_empty() -> None:
    with pytest.raises(RuleChangeError, match="names no rule; give at least one"):
        apply_rule_changes(CURRENT, {})


def test_rule_change_invalid_value_named() -> None:
    with pytest.raises(RuleChangeError) as raised:
        apply_rule_changes(CURRENT, {"min_count": 0})

    assert "min_count=0: Input should be greater than or equal to 1" in str(
        raised.value
    )


def test_rule_change_unknown_analysis() -> None:
    with pytest.raises(RuleChangeError) as raised:
        apply_rule_changes(CURRENT, {"allowed_analyses": ["ols", "logitt"]})

    message = str(raised.value)
    assert "allowed_analyses=['ols', 'logitt']" in message
    assert "unknown analysis 'logitt' (did you mean 'logit'?)" in message
    assert f"the analyses are: {', '.join(ANALYSES)}" in message


def test_rule_change_no_close_match() -> None:
    with pytest.raises(RuleChangeError) as raised:
        apply_rule_changes(CURRENT, {"quorum": 2})

    assert "unknown rule 'quorum';" in str(raised.value)
    assert "did you mean" not in str(raised.value)
