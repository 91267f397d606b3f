"""Rule changes: proposed by a steward, active once every member accepted."""

from __future__ import annotations

from hub_network import COLLABORATION, QUERY, Network

RULES = f"/collaborations/{COLLABORATION}/rules"


def _propose(network: Network, changes: dict, steward: str = "Hospital A"):
    return network.call(
        "POST",
        RULES,
        network.stewards[steward],
        json={"changes": changes, "reason": "stricter for rare diagnoses"},
    )


def test_rules_start_at_version_one(network: Network) -> None:
    versions = network.ok("GET", RULES, network.scientist)
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["state"] == "active"
    assert versions[0]["rules"]["min_count"] == 10


def test_rule_change_waits_for_every_member(network: Network) -> None:
    proposed = _propose(network, {"min_count": 15})
    after_b = network.ok("POST", f"{RULES}/2/accept", network.stewards["Hospital B"])
    in_force = network.ok("GET", f"/collaborations/{COLLABORATION}", network.scientist)
    after_c = network.ok("POST", f"{RULES}/2/accept", network.stewards["Hospital C"])
    now_in_force = network.ok(
        "GET", f"/collaborations/{COLLABORATION}", network.scientist
    )
    versions = network.ok("GET", RULES, network.scientist)

    assert proposed.status_code == 201
    assert proposed.json()["state"] == "proposed"
    assert proposed.json()["awaiting"] == ["Hospital B", "Hospital C"]
    assert after_b["awaiting"] == ["Hospital C"]
    assert in_force["rules"]["min_count"] == 10
    assert after_c["state"] == "active"
    assert now_in_force["rules"]["min_count"] == 15
    assert [(v["version"], v["state"]) for v in versions] == [
        (2, "active"),
        (1, "superseded"),
    ]


def test_rule_change_applies_to_later_requests(network: Network) -> None:
    _propose(network, {"allowed_analyses": ["crosstab"]})
    for hospital in ("Hospital B", "Hospital C"):
        network.ok("POST", f"{RULES}/2/accept", network.stewards[hospital])
    response = network.call(
        "POST",
        "/requests",
        network.scientist,
        json={"collaboration": COLLABORATION, "query": QUERY, "purpose": "test"},
    )
    assert response.json()["state"] == "rejected"
    assert response.json()["rejection"]["rule"] == "allowed_analyses"


def test_rule_second_proposal_conflicts(network: Network) -> None:
    _propose(network, {"min_count": 12})
    second = _propose(network, {"min_count": 20}, steward="Hospital B")
    assert second.status_code == 409
    assert second.json()["detail"]["code"] == "proposal_open"


def test_rule_accept_twice_conflicts(network: Network) -> None:
    _propose(network, {"min_count": 12})
    again = network.call("POST", f"{RULES}/2/accept", network.stewards["Hospital A"])
    assert again.status_code == 409
    assert again.json()["detail"]["code"] == "already_decided"


def test_rule_unknown_or_invalid_rejected(network: Network) -> None:
    unknown = _propose(network, {"min_cont": 12})
    invalid = _propose(network, {"min_count": 0})
    unchanged = _propose(network, {"min_count": 10})
    assert unknown.status_code == 422
    assert "unknown rule 'min_cont'" in unknown.json()["detail"]["message"]
    assert invalid.status_code == 422
    assert "min_count=0: " in invalid.json()["detail"]["message"]
    assert "errors.pydantic.dev" not in invalid.json()["detail"]["message"]
    assert unchanged.status_code == 422
    assert "changes nothing" in unchanged.json()["detail"]["message"]


def test_rule_typo_reported_before_open_proposal(network: Network) -> None:
    _propose(network, {"min_count": 12})
    typo = _propose(network, {"min_cont": 20}, steward="Hospital B")
    bad_value = _propose(network, {"min_count": "twenty"}, steward="Hospital B")
    valid = _propose(network, {"min_count": 20}, steward="Hospital B")

    message = typo.json()["detail"]["message"]
    assert typo.status_code == 422
    assert "unknown rule 'min_cont' (did you mean 'min_count'?)" in message
    assert "the rules are: min_count, min_stations," in message
    assert bad_value.status_code == 422
    assert "min_count='twenty'" in bad_value.json()["detail"]["message"]
    assert valid.status_code == 409
    assert valid.json()["detail"]["code"] == "proposal_open"


def test_rule_unknown_analysis_rejected(network: Network) -> None:
    typo = _propose(network, {"allowed_analyses": ["aggregate", "crostab"]})

    message = typo.json()["detail"]["message"]
    assert typo.status_code == 422
    assert "unknown analysis 'crostab' (did you mean 'crosstab'?)" in message
    assert "the analyses are: aggregate, crosstab, overlap" in message
    assert "Value error" not in message


def test_rule_list_given_as_text_names_json(network: Network) -> None:
    invalid = _propose(network, {"allowed_analyses": "aggregate,crosstab"})

    message = invalid.json()["detail"]["message"]
    assert invalid.status_code == 422
    assert "allowed_analyses='aggregate,crosstab'" in message
    assert 'allowed_analyses=\'["aggregate", "crosstab"]\'' in message


def test_rule_proposal_needs_steward(network: Network) -> None:
    response = network.call(
        "POST",
        RULES,
        network.scientist,
        json={"changes": {"min_count": 12}, "reason": "x"},
    )
    assert response.status_code == 403


def test_rule_withdrawn_proposal(network: Network) -> None:
    _propose(network, {"min_count": 12})
    withdrawn = network.ok(
        "POST", f"{RULES}/2/withdraw", network.stewards["Hospital B"]
    )
    late = network.call("POST", f"{RULES}/2/accept", network.stewards["Hospital C"])
    assert withdrawn["state"] == "withdrawn"
    assert late.status_code == 409


def test_rule_changes_are_audited(network: Network) -> None:
    _propose(network, {"min_count": 12})
    for hospital in ("Hospital B", "Hospital C"):
        network.ok("POST", f"{RULES}/2/accept", network.stewards[hospital])
    events = [
        r["event"]
        for r in network.ok("GET", "/audit", network.admin)
        if r["event"].startswith("rules.")
    ]
    assert events == [
        "rules.proposed",
        "rules.accepted",
        "rules.accepted",
        "rules.accepted",
        "rules.activated",
    ]


def test_rule_level_count_reaches_task(network: Network) -> None:
    proposed = _propose(network, {"min_level_count": 20})
    for hospital in ("Hospital B", "Hospital C"):
        network.ok("POST", f"{RULES}/2/accept", network.stewards[hospital])
    in_force = network.ok("GET", f"/collaborations/{COLLABORATION}", network.scientist)
    request = network.submit()
    network.approve_all(request["id"])
    tasks = network.ok("GET", "/stations/me/tasks", network.stations["st-a"])
    disclosure = tasks[0]["task"]["disclosure"]

    assert proposed.status_code == 201
    assert in_force["rules"]["min_level_count"] == 20
    assert in_force["rules"]["min_count"] == 10
    assert disclosure["min_level_count"] == 20
    assert disclosure["min_count"] == 10


def test_rule_level_count_below_one_rejected(network: Network) -> None:
    response = _propose(network, {"min_level_count": 0})
    assert response.status_code == 422
    assert "min_level_count=0: " in response.json()["detail"]["message"]
