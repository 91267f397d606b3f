"""Query budgets: requests per scientist per period in a collaboration."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hub_network import HOSPITALS, LUNG_SCHEMA, QUERY, RESEARCH, Network

BUDGETED = "budgeted-study"


@pytest.fixture
def budgeted(bare_network: Network) -> Network:
    """A collaboration that allows each scientist two requests per 30 days.

    At most 4 cells per grouping, so that a query can break a rule.
    """
    bare_network.ok(
        "POST",
        "/collaborations",
        bare_network.admin,
        json={
            "name": BUDGETED,
            "members": [*HOSPITALS.values(), RESEARCH],
            "rules": {
                "max_requests": 2,
                "budget_period_days": 30,
                "max_group_levels": 4,
            },
        },
    )
    for token in bare_network.stations.values():
        bare_network.ok(
            "PUT",
            f"/collaborations/{BUDGETED}/datasets/lung",
            token,
            json={"schema": LUNG_SCHEMA},
        )
    return bare_network


def submit(network: Network, query: str = QUERY) -> dict[str, Any]:
    """Submit `query` as the scientist in the budgeted collaboration."""
    return network.ok(
        "POST",
        "/requests",
        network.scientist,
        json={"collaboration": BUDGETED, "query": query, "purpose": "budget test"},
    )


def budget(network: Network) -> dict[str, Any]:
    """Return the scientist's budget in the budgeted collaboration."""
    return network.ok("GET", f"/collaborations/{BUDGETED}/budget", network.scientist)


def test_budget_starts_unused(budgeted: Network) -> None:
    body = budget(budgeted)

    assert body["limit"] == 2
    assert body["used"] == 0
    assert body["remaining"] == 2
    assert body["next_release"] is None


def test_request_beyond_budget_rejected(budgeted: Network) -> None:
    first = submit(budgeted)
    submit(budgeted)

    third = submit(budgeted)

    assert third["state"] == "rejected"
    assert third["rejection"]["rule"] == "query_budget"
    assert "2 of 2 requests in the last 30 days" in third["rejection"]["message"]
    body = budget(budgeted)
    assert body["used"] == 2
    assert body["remaining"] == 0
    released = datetime.fromisoformat(body["next_release"])
    assert released - datetime.fromisoformat(first["created_at"]) == timedelta(days=30)


def test_rule_rejection_does_not_count(budgeted: Network) -> None:
    rejected = submit(budgeted, "SELECT count(*) FROM lung GROUP BY sex, ph.ecog")

    assert rejected["state"] == "rejected"
    assert rejected["rejection"]["rule"] == "max_group_levels"
    assert budget(budgeted)["used"] == 0


def test_steward_rejection_counts(budgeted: Network) -> None:
    request = submit(budgeted)
    steward = next(iter(budgeted.stewards.values()))
    budgeted.ok(
        "POST", f"/requests/{request['id']}/reject", steward, json={"reason": "no"}
    )

    assert budget(budgeted)["used"] == 1


def test_collaboration_without_limit(network: Network) -> None:
    network.submit()

    body = network.ok("GET", "/collaborations/lung-study/budget", network.scientist)

    assert body["limit"] is None
    assert body["remaining"] is None
    assert body["used"] == 1
