"""A request's whole life: submit, approve, sign, run, release."""

from __future__ import annotations

from typing import Any

from hub_network import HOSPITALS, LUNG_SCHEMA, QUERY, Network

from linksight.result_encryption import encode_key
from linksight.signing import parse_public_key, verify

RESULT: dict[str, Any] = {
    "status": "released",
    "columns": ["sex", "count(*)", "mean(age)", "mean(age).n"],
    "rows": [{"sex": 1, "count(*)": 138}, {"sex": 2, "count(*)": 90}],
    "checks": [{"rule": "min_count", "statistic": "count(*)", "passed": True}],
}


def test_request_full_life_cycle(network: Network) -> None:
    # Submit: the request waits for the three hospitals.
    submitted = network.submit()
    assert submitted["state"] == "awaiting_approval"
    assert submitted["touched_organisations"] == sorted(HOSPITALS.values())
    assert submitted["task_id"] is None

    # Approve by each steward: approved after the last, with a signed task.
    request_id = submitted["id"]
    approved = network.approve_all(request_id)
    assert approved["state"] == "approved"
    assert len(approved["approvals"]) == 3
    assert approved["task_id"]

    # Each station gets the task, and its signature verifies.
    public_key = parse_public_key(
        network.ok("GET", "/public-key", network.admin)["public_key"]
    )
    tasks = network.ok("GET", "/stations/me/tasks", network.stations["st-a"])
    assert len(tasks) == 1
    signed = tasks[0]
    verify(public_key, signed["task"], signed["signature"])
    task = signed["task"]
    assert task["task_id"] == approved["task_id"]
    assert [party["station"] for party in task["parties"]] == ["st-a", "st-b", "st-c"]
    assert task["parties"][1]["port"] == 11366
    assert task["requester"] == "sam"
    assert task["requester_organisation"] == "Research Institute"
    assert task["requester_key"] == encode_key(network.scientist_key.public_key)
    assert task["disclosure"]["min_count"] == 10
    assert task["mpc_timeout_seconds"] == 290.0
    assert task["query"]["dataset"] == "lung"

    # Station events: running after the first start, completed after all.
    task_id = task["task_id"]
    started = network.report(task_id, "st-a", "started").json()
    assert started["state"] == "running"
    for station in ("st-b", "st-c"):
        network.report(task_id, station, "started")
    for station in ("st-a", "st-b"):
        reply = network.report(task_id, station, "completed", result=RESULT)
        assert reply.json()["state"] == "running"
    last = network.report(task_id, "st-c", "completed", result=RESULT)
    assert last.json()["state"] == "completed"

    # The submitter and admins read the result; stewards and others may not.
    result = network.ok("GET", f"/requests/{request_id}/result", network.scientist)
    assert result["state"] == "completed"
    assert network.open(result["result"], request_id) == RESULT
    assert set(result["result"]["ciphertexts"]) == {"st-a", "st-b", "st-c"}
    assert "138" not in str(result["result"])
    assert result["audit_seq"] > 0
    steward = network.call(
        "GET", f"/requests/{request_id}/result", network.stewards["Hospital A"]
    )
    assert steward.status_code == 403
    assert steward.json()["detail"]["code"] == "forbidden"
    other_scientist = network.call(
        "GET", f"/requests/{request_id}/result", network.dual
    )
    assert other_scientist.status_code == 403
    admin = network.call("GET", f"/requests/{request_id}/result", network.admin)
    assert admin.status_code == 200


def test_result_audit_record_holds_hash(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]
    for station in network.stations:
        network.report(task_id, station, "completed", result=RESULT)
    result = network.ok("GET", f"/requests/{request_id}/result", network.scientist)

    records = network.ok("GET", f"/audit?request_id={request_id}", network.admin)
    released = next(r for r in records if r["seq"] == result["audit_seq"])
    assert released["event"] == "request.result"
    assert len(released["details"]["result_sha256"]) == 64
    assert released["details"]["disclosure_checks"] == [
        {"rule": "min_count", "outcome": "pass"}
    ]
    assert "rows" not in str(released["details"])


def test_result_blocked_by_disclosure_control(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]
    blocked = {"status": "blocked", "checks": [{"rule": "min_count", "passed": False}]}
    for station in network.stations:
        network.report(task_id, station, "completed", result=blocked)

    result = network.ok("GET", f"/requests/{request_id}/result", network.scientist)
    assert result["state"] == "blocked_by_disclosure_control"
    assert result["result"]["status"] == "blocked"
    assert network.open(result["result"], request_id) == blocked


def test_result_before_completion_not_ready(network: Network) -> None:
    request_id = network.submit()["id"]

    response = network.call("GET", f"/requests/{request_id}/result", network.scientist)
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "not_ready"
    assert "awaiting_approval" in response.json()["detail"]["message"]


def test_tasks_list_drops_reported_station(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]
    network.report(task_id, "st-a", "completed", result=RESULT)

    assert network.ok("GET", "/stations/me/tasks", network.stations["st-a"]) == []
    assert len(network.ok("GET", "/stations/me/tasks", network.stations["st-b"])) == 1


def test_task_status_for_party(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]

    status = network.ok("GET", f"/tasks/{task_id}", network.stations["st-b"])
    assert status == {
        "task_id": task_id,
        "request_id": request_id,
        "state": "approved",
        "error": None,
    }


def test_approval_not_required_signs_at_once(bare_network: Network) -> None:
    bare_network.ok(
        "POST",
        "/collaborations",
        bare_network.admin,
        json={
            "name": "lung-study",
            "members": [*HOSPITALS.values(), "Research Institute"],
            "rules": {"requires_approval": False},
        },
    )
    for token in bare_network.stations.values():
        bare_network.ok(
            "PUT",
            "/collaborations/lung-study/datasets/lung",
            token,
            json={"schema": LUNG_SCHEMA},
        )

    request = bare_network.submit(QUERY)
    assert request["state"] == "approved"
    assert request["task_id"]
