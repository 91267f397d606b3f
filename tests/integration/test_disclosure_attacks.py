"""Disclosure attacks tried against a real network, each stopped by a named rule.

Small cells, groups of one or two, regressions on too few persons,
differencing and a member subtracting its own part have their tests beside
the analyses they guard (test_lung_queries.py, test_lung_models.py,
test_differencing.py), and too many levels in the hub's rule tests
(tests/governance/test_hub_budget.py). This module tries the others:
one person dominating a sum, min and max, an identifier as an output or a
filter, and the same query repeated to average out noise.
"""

from __future__ import annotations

import pytest

from linksight.network import lung_data


def _run(network, query: str, collaboration: str | None = None) -> dict:
    request = network.submit(
        query, purpose="disclosure attack test", collaboration=collaboration
    )
    network.approve_all(request["id"])
    final = network.wait_for(request["id"])
    return {"request": final, **network.result(request["id"])["result"]}


def _submit_raw(network, query: str, collaboration: str = "lung-study"):
    return network.call(
        "POST",
        "/requests",
        network.scientist_token,
        expected=(422,),
        json={"collaboration": collaboration, "query": query, "purpose": "attack"},
    )


def test_sum_dominated_by_one_person_blocked(lung_network):
    # 34 patients who lost no weight and the one who lost 68 pounds: the
    # sum is that one patient's loss, while count(*) passes min_count.
    frame = lung_data()
    result = _run(
        lung_network,
        "SELECT count(*), sum(wt.loss) FROM lung WHERE wt.loss == 0 or wt.loss > 60",
    )
    failed = {c["rule"] for c in result["checks"] if not c["passed"]}
    passed = {c["rule"] for c in result["checks"] if c["passed"]}
    assert int((frame["wt.loss"] > 60).sum()) == 1
    assert int((frame["wt.loss"] == 0).sum()) >= 10
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "dominance"
    assert "2 largest values" in result["blocked"]["message"]
    assert "85%" in result["blocked"]["message"]
    assert failed == {"dominance", "p_percent"}
    assert "min_count" in passed


@pytest.mark.parametrize(
    "query",
    [
        "SELECT max(age) FROM lung",
        "SELECT min(age) FROM lung GROUP BY sex",
        "SELECT count(*), maximum(meal.cal) FROM lung",
    ],
)
def test_min_max_rejected(lung_network, query):
    response = _submit_raw(lung_network, query)
    detail = response["detail"]
    assert detail["code"] == "invalid_query"
    assert "disclosure rule no_min_max" in detail["message"]
    assert "one person's value" in detail["message"]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM covid WHERE subject_id == '1234'",
        "SELECT count(*) FROM covid WHERE subject_id IS NOT NULL GROUP BY gender",
        "SELECT count(subject_id) FROM covid",
        "SELECT count(*) FROM covid GROUP BY subject_id",
    ],
)
def test_identifier_output_or_filter_rejected(waiting_list_network, query):
    response = waiting_list_network.call(
        "POST",
        "/requests",
        waiting_list_network.scientist_token,
        expected=(422,),
        json={"collaboration": "waiting-lists", "query": query, "purpose": "attack"},
    )
    if "detail" in response:
        message = response["detail"]["message"]
    else:
        assert response["state"] == "rejected"
        assert response["rejection"]["rule"] == "identifier_use"
        message = response["rejection"]["message"]
    assert "subject_id" in message
    assert "identifier" in message


def test_repeated_query_same_and_counted(lung_network):
    # Linksight adds no noise, so a repeat returns the same figures, and
    # averaging repeats gains nothing; each repeat still uses the budget.
    # The sums spread over many persons, so they pass the dominance rules.
    frame = lung_data()
    query = "SELECT sum(meal.cal) FROM lung GROUP BY sex"
    path = f"/collaborations/{lung_network.collaboration}/budget"
    before = lung_network.call("GET", path, lung_network.scientist_token)
    first = _run(lung_network, query)
    second = _run(lung_network, query)
    after = lung_network.call("GET", path, lung_network.scientist_token)
    rules = {(c["rule"], c["passed"]) for c in first["checks"]}
    pooled = frame.groupby("sex")["meal.cal"].sum()
    assert first["status"] == "released"
    assert ("dominance", True) in rules
    assert ("p_percent", True) in rules
    assert ("dominance", False) not in rules
    for row in first["rows"]:
        assert row["sum(meal.cal)"] == pytest.approx(pooled[int(row["sex"])], abs=1e-6)
    assert second["rows"] == first["rows"]
    assert second["sha256"] == first["sha256"]
    assert second["request"]["id"] != first["request"]["id"]
    assert after["used"] == before["used"] + 2
