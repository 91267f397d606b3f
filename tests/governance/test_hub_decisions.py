"""Submission checks, steward decisions, revocation and expiry."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from hub_network import (
    COLLABORATION,
    HOSPITALS,
    LUNG_SCHEMA,
    QUERY,
    RESEARCH,
    Network,
)

from governance.app import create_app
from governance.config import HubSettings


def test_invalid_query_position(network: Network) -> None:
    query = "SELECT mean(agee) FROM lung"
    response = network.call(
        "POST",
        "/requests",
        network.scientist,
        json={"collaboration": COLLABORATION, "query": query, "purpose": "test"},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["code"] == "invalid_query"
    assert detail["position"] == query.index("agee")
    assert "did you mean 'age'" in detail["message"]


def test_invalid_query_stores_nothing(network: Network) -> None:
    network.call(
        "POST",
        "/requests",
        network.scientist,
        json={"collaboration": COLLABORATION, "query": "SELECT", "purpose": "x"},
    )
    assert network.ok("GET", "/requests", network.admin) == []


def test_rule_violation_stored_rejected(bare_network: Network) -> None:
    bare_network.ok(
        "POST",
        "/collaborations",
        bare_network.admin,
        json={
            "name": COLLABORATION,
            "members": [*HOSPITALS.values(), RESEARCH],
            "rules": {"allowed_analyses": ["aggregate"]},
        },
    )
    for token in bare_network.stations.values():
        bare_network.ok(
            "PUT",
            f"/collaborations/{COLLABORATION}/datasets/lung",
            token,
            json={"schema": LUNG_SCHEMA},
        )

    response = bare_network.call(
        "POST",
        "/requests",
        bare_network.scientist,
        json={
            "collaboration": COLLABORATION,
            "query": "SELECT crosstab(sex, ph.ecog) FROM lung",
            "purpose": "test",
        },
    )
    assert response.status_code == 201
    request = response.json()
    assert request["state"] == "rejected"
    assert request["rejection"]["rule"] == "allowed_analyses"
    assert "crosstab" in request["rejection"]["message"]


def test_too_few_stations_rejected(network: Network) -> None:
    other = dict(LUNG_SCHEMA, name="waitlist")
    network.ok(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/waitlist",
        network.stations["st-a"],
        json={"schema": other},
    )

    request = network.submit("SELECT count(*) FROM waitlist")
    assert request["state"] == "rejected"
    assert request["rejection"]["rule"] == "min_stations"
    assert request["touched_organisations"] == ["Hospital A"]


def test_non_member_submit_forbidden(network: Network) -> None:
    network.ok("POST", "/organisations", network.admin, json={"name": "Outsider"})
    outsider = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "olga", "organisation": "Outsider", "roles": ["scientist"]},
    )["token"]

    response = network.call(
        "POST",
        "/requests",
        outsider,
        json={
            "collaboration": COLLABORATION,
            "query": "SELECT count(*) FROM lung",
            "purpose": "x",
        },
    )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "not_member"


def test_scientist_approving_forbidden(network: Network) -> None:
    request_id = network.submit()["id"]

    response = network.call(
        "POST", f"/requests/{request_id}/approve", network.scientist
    )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "forbidden"
    assert "steward role" in response.json()["detail"]["message"]


def test_submitter_approving_own_request(network: Network) -> None:
    request_id = network.submit(token=network.dual)["id"]

    response = network.call("POST", f"/requests/{request_id}/approve", network.dual)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail["code"] == "own_request"
    assert "never approved by the person who submitted it" in detail["message"]


def test_untouched_steward_not_touched(network: Network) -> None:
    network.ok("POST", "/organisations", network.admin, json={"name": "GP D"})
    steward_d = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "steward-d", "organisation": "GP D", "roles": ["steward"]},
    )["token"]
    request_id = network.submit()["id"]

    response = network.call("POST", f"/requests/{request_id}/approve", steward_d)
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "not_touched"
    assert "Hospital A" in response.json()["detail"]["message"]


def test_second_decision_already_decided(network: Network) -> None:
    request_id = network.submit()["id"]
    network.ok(
        "POST", f"/requests/{request_id}/approve", network.stewards["Hospital A"]
    )

    response = network.call("POST", f"/requests/{request_id}/approve", network.dual)
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "already_decided"
    assert "steward-a" in response.json()["detail"]["message"]


def test_approve_records_reason(network: Network) -> None:
    request_id = network.submit()["id"]

    request = network.ok(
        "POST",
        f"/requests/{request_id}/approve",
        network.stewards["Hospital C"],
        json={"reason": "within the study protocol"},
    )
    assert request["state"] == "awaiting_approval"
    assert request["approvals"][0]["organisation"] == "Hospital C"
    assert request["approvals"][0]["reason"] == "within the study protocol"


def test_reject_needs_reason(network: Network) -> None:
    request_id = network.submit()["id"]

    response = network.call(
        "POST",
        f"/requests/{request_id}/reject",
        network.stewards["Hospital B"],
        json={},
    )
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_request"


def test_reject_rejects_request(network: Network) -> None:
    request_id = network.submit()["id"]

    request = network.ok(
        "POST",
        f"/requests/{request_id}/reject",
        network.stewards["Hospital B"],
        json={"reason": "purpose too vague"},
    )
    assert request["state"] == "rejected"
    assert "purpose too vague" in request["rejection"]["message"]
    assert request["approvals"][0]["decision"] == "rejected"
    assert request["approvals"][0]["steward"] == "steward-b"


def test_decision_after_rejection_invalid_state(network: Network) -> None:
    request_id = network.submit()["id"]
    network.ok(
        "POST",
        f"/requests/{request_id}/reject",
        network.stewards["Hospital B"],
        json={"reason": "no"},
    )

    response = network.call(
        "POST", f"/requests/{request_id}/approve", network.stewards["Hospital C"]
    )
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "invalid_state"
    assert "rejected" in response.json()["detail"]["message"]


def test_missing_mpc_endpoint_fails_request(network: Network) -> None:
    late = network.ok(
        "POST",
        "/stations",
        network.admin,
        json={"name": "st-new", "organisation": "Hospital C"},
    )
    network.ok(
        "PUT",
        f"/collaborations/{COLLABORATION}/datasets/lung",
        late["token"],
        json={"schema": LUNG_SCHEMA},
    )
    request_id = network.submit()["id"]

    request = network.approve_all(request_id)
    assert request["state"] == "failed"
    assert "st-new" in request["error"]
    assert "PUT /stations/me" in request["error"]


def test_revoke_by_submitter(network: Network) -> None:
    request_id = network.submit()["id"]

    request = network.ok("POST", f"/requests/{request_id}/revoke", network.scientist)
    assert request["state"] == "revoked"


def test_revoke_running_invalid_state(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]
    network.report(task_id, "st-a", "started")

    response = network.call(
        "POST", f"/requests/{request_id}/revoke", network.stewards["Hospital A"]
    )
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "invalid_state"


def test_revoke_by_touched_steward(network: Network) -> None:
    request_id = network.submit()["id"]

    request = network.ok("POST", f"/requests/{request_id}/revoke", network.dual)
    assert request["state"] == "revoked"


def test_revoke_by_other_scientist_forbidden(network: Network) -> None:
    other = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "kai", "organisation": RESEARCH, "roles": ["scientist"]},
    )["token"]
    request_id = network.submit()["id"]

    response = network.call("POST", f"/requests/{request_id}/revoke", other)
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "forbidden"
    assert "only the submitter" in response.json()["detail"]["message"]


def test_revoked_task_leaves_station_list(network: Network) -> None:
    request_id = network.submit()["id"]
    network.approve_all(request_id)
    network.ok("POST", f"/requests/{request_id}/revoke", network.scientist)

    assert network.ok("GET", "/stations/me/tasks", network.stations["st-a"]) == []


def test_request_visibility_by_role(network: Network) -> None:
    request_id = network.submit()["id"]
    network.ok("POST", "/organisations", network.admin, json={"name": "GP D"})
    steward_d = network.ok(
        "POST",
        "/users",
        network.admin,
        json={"name": "steward-d", "organisation": "GP D", "roles": ["steward"]},
    )["token"]

    assert [r["id"] for r in network.ok("GET", "/requests", network.scientist)] == [
        request_id
    ]
    assert len(network.ok("GET", "/requests", network.stewards["Hospital B"])) == 1
    assert network.ok("GET", "/requests", steward_d) == []
    assert network.call("GET", f"/requests/{request_id}", steward_d).status_code == 404


def test_request_list_state_filter(network: Network) -> None:
    first = network.submit()["id"]
    network.submit()
    network.ok("POST", f"/requests/{first}/revoke", network.scientist)

    revoked = network.ok("GET", "/requests?state=revoked", network.admin)
    assert [r["id"] for r in revoked] == [first]


def test_request_expires_after_deadline(network: Network) -> None:
    request_id = network.submit()["id"]
    short = HubSettings(
        state_dir=network.settings.state_dir, approval_deadline_seconds=0.05
    )
    header = {"Authorization": f"Bearer {network.scientist}"}
    body = {"collaboration": COLLABORATION, "query": QUERY, "purpose": "test"}
    with TestClient(create_app(short)) as client:
        late = client.post("/requests", headers=header, json=body).json()["id"]
        time.sleep(0.1)
        read = client.get(f"/requests/{late}", headers=header).json()
        listed = client.get("/requests", headers=header).json()
    assert read["state"] == "expired"
    states = {request["id"]: request["state"] for request in listed}
    assert states[request_id] == "awaiting_approval"
