"""The message of a result blocked by disclosure control."""

from __future__ import annotations

from types import SimpleNamespace

from station.result import _blocked_summary

TASK = SimpleNamespace(
    disclosure=SimpleNamespace(
        min_count=10, dominance_n=2, dominance_k=0.85, p_percent=0.1
    )
)
LAYOUT = SimpleNamespace(group_by=["sex", "ph.ecog"])


def _check(rule: str, statistic: str, cell: dict) -> dict:
    return {"rule": rule, "statistic": statistic, "cell": cell, "passed": False}


def test_blocked_message_lists_first_rule_only():
    failed = [
        _check("min_count", "count(*)", {"sex": 1, "ph.ecog": 3}),
        _check("differencing", "rows versus request 3", {}),
        _check("min_count", "count(*)", {"sex": 2, "ph.ecog": 3}),
    ]

    summary = _blocked_summary(failed, TASK, LAYOUT)

    assert summary["rule"] == "min_count"
    assert summary["failed"] == 2
    assert "2 figure(s)" in summary["message"]
    assert "count(*) for sex=1, ph.ecog=3" in summary["message"]
    assert "request 3" not in summary["message"].split(". To release")[0]
    assert "Rule(s) differencing failed too" in summary["message"]


def test_blocked_message_single_rule_has_no_others():
    failed = [_check("min_count", "count(*)", {"sex": 1, "ph.ecog": 3})]

    summary = _blocked_summary(failed, TASK, LAYOUT)

    assert "failed too" not in summary["message"]


def test_overlapping_filters_message_names_window():
    failed = [_check("overlapping_filters", "counts versus pairs of requests 4, 7", {})]

    summary = _blocked_summary(failed, TASK, LAYOUT)

    assert summary["rule"] == "overlapping_filters"
    assert "earlier requests among 4, 7" in summary["message"]
    assert "1 to 9 persons" in summary["message"]
    assert "at least 10 persons" in summary["message"]


def test_differencing_message_ignores_overlapping_check():
    failed = [
        _check("differencing", "rows versus request 3", {}),
        _check("overlapping_filters", "counts versus pairs of requests 3, 5", {}),
    ]

    summary = _blocked_summary(failed, TASK, LAYOUT)

    assert summary["rule"] == "differencing"
    assert "request(s) 3 by" in summary["message"]
    assert summary["failed"] == 1
