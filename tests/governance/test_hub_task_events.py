"""Station reports on tasks: failures, disagreements and repeated events."""

from __future__ import annotations

from typing import Any

import pytest
from hub_network import Network
from nacl.public import PrivateKey

from linksight.result_encryption import encode_key, seal_result

RESULT: dict[str, Any] = {"status": "released", "rows": [{"count(*)": 228}]}


@pytest.fixture
def task_id(network: Network) -> str:
    """The task of an approved request in the lung study."""
    request_id = network.submit()["id"]
    return network.approve_all(request_id)["task_id"]


def request_of(network: Network, task_id: str) -> dict[str, Any]:
    """Return the request behind `task_id`, as the scientist reads it."""
    status = network.ok("GET", f"/tasks/{task_id}", network.stations["st-a"])
    return network.ok("GET", f"/requests/{status['request_id']}", network.scientist)


def test_failed_event_names_station(network: Network, task_id: str) -> None:
    network.report(task_id, "st-a", "started")

    reply = network.report(task_id, "st-b", "failed", error="MPC peer st-c timed out")
    assert reply.status_code == 200
    assert reply.json()["state"] == "failed"
    request = request_of(network, task_id)
    assert request["state"] == "failed"
    assert request["error"] == "station st-b: MPC peer st-c timed out"


def test_refused_event_fails_request(network: Network, task_id: str) -> None:
    network.report(task_id, "st-c", "refused", error="local policy: min_count 20")

    request = request_of(network, task_id)
    assert request["state"] == "failed"
    assert request["error"] == "station st-c: local policy: min_count 20"


def test_first_failure_wins(network: Network, task_id: str) -> None:
    network.report(task_id, "st-b", "failed", error="first")
    network.report(task_id, "st-c", "failed", error="second")

    assert request_of(network, task_id)["error"] == "station st-b: first"
    records = network.ok("GET", "/audit", network.admin)
    ignored = [r for r in records if r["outcome"] == "ignored"]
    assert ignored[-1]["user"] == "st-c"
    assert ignored[-1]["details"]["reason"] == "request is failed"


def test_different_results_fail_request(network: Network, task_id: str) -> None:
    network.report(task_id, "st-a", "completed", result=RESULT)
    network.report(task_id, "st-b", "completed", result=RESULT)
    # The hub compares only the fields in the clear; a difference inside the
    # ciphertexts is found by the client when it opens them.
    network.report(task_id, "st-c", "completed", result={"status": "blocked"})

    request = request_of(network, task_id)
    assert request["state"] == "failed"
    assert request["error"] == "stations returned different results"


def test_repeated_event_changes_nothing(network: Network, task_id: str) -> None:
    network.report(task_id, "st-a", "completed", result=RESULT)
    network.report(task_id, "st-a", "completed", result={"status": "blocked"})
    network.report(task_id, "st-a", "failed", error="late")

    request = request_of(network, task_id)
    assert request["state"] == "running"
    assert request["error"] is None
    network.report(task_id, "st-b", "completed", result=RESULT)
    network.report(task_id, "st-c", "completed", result=RESULT)
    assert request_of(network, task_id)["state"] == "completed"


def test_completed_without_result_invalid(network: Network, task_id: str) -> None:
    reply = network.report(task_id, "st-a", "completed")
    assert reply.status_code == 422
    assert reply.json()["detail"]["code"] == "missing_result"


def test_failed_without_error_invalid(network: Network, task_id: str) -> None:
    reply = network.report(task_id, "st-a", "failed")
    assert reply.status_code == 422
    assert reply.json()["detail"]["code"] == "missing_error"


def test_non_party_station_forbidden(network: Network, task_id: str) -> None:
    outsider = network.ok(
        "POST",
        "/stations",
        network.admin,
        json={"name": "st-y", "organisation": "Hospital B"},
    )["token"]

    response = network.call(
        "POST", f"/tasks/{task_id}/events", outsider, json={"event": "started"}
    )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "not_party"
    assert network.call("GET", f"/tasks/{task_id}", outsider).status_code == 403


def test_unknown_task_not_found(network: Network) -> None:
    response = network.call("GET", "/tasks/0123abcd", network.stations["st-a"])
    assert response.status_code == 404
    assert "0123abcd" in response.json()["detail"]["message"]


def test_plain_result_rejected(network: Network, task_id: str) -> None:
    reply = network.call(
        "POST",
        f"/tasks/{task_id}/events",
        network.stations["st-a"],
        json={"event": "completed", "result": RESULT},
    )

    assert reply.status_code == 422
    assert "ciphertext" in reply.text


def test_result_for_other_key_rejected(network: Network, task_id: str) -> None:
    other = seal_result(RESULT, encode_key(PrivateKey.generate().public_key))

    reply = network.report(task_id, "st-a", "completed", result=other)

    assert reply.status_code == 422
    assert reply.json()["detail"]["code"] == "wrong_recipient"
    assert "requester_key" in reply.json()["detail"]["message"]
