"""Each station's progress on a request, as its submitter sees it."""

from __future__ import annotations

from hub_network import Network


def party_statuses(network: Network, request_id: int) -> dict[str, str]:
    """Return each party's status on request `request_id`, by station."""
    request = network.ok("GET", f"/requests/{request_id}", network.scientist)
    return {party["station"]: party["status"] for party in request["parties"]}


def test_parties_pending_before_approval(network: Network) -> None:
    request = network.submit()

    assert [p["station"] for p in request["parties"]] == ["st-a", "st-b", "st-c"]
    assert {p["status"] for p in request["parties"]} == {"pending"}
    assert request["parties"][0]["organisation"] == "Hospital A"
    assert request["parties"][0]["reported_at"] is None


def test_parties_show_each_station_report(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]

    network.report(task_id, "st-a", "started")
    network.report(task_id, "st-b", "started")
    network.report(task_id, "st-b", "completed", result={"status": "released"})

    statuses = party_statuses(network, request_id)
    assert statuses == {"st-a": "started", "st-b": "completed", "st-c": "pending"}


def party_progress(network: Network, request_id: int) -> dict[str, dict | None]:
    """Return each party's training progress on request `request_id`."""
    request = network.ok("GET", f"/requests/{request_id}", network.scientist)
    return {party["station"]: party["progress"] for party in request["parties"]}


def test_progress_shows_round(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]
    network.report(task_id, "st-a", "started")

    response = network.report(
        task_id, "st-a", "progress", progress={"round": 2, "rounds": 5}
    )
    later = network.report(
        task_id, "st-a", "progress", progress={"round": 3, "rounds": 5}
    )

    assert response.status_code == 200
    assert later.status_code == 200
    progress = party_progress(network, request_id)
    assert progress["st-a"] == {"round": 3, "rounds": 5}
    assert progress["st-b"] is None
    assert party_statuses(network, request_id)["st-a"] == "started"


def test_progress_needs_round(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]

    response = network.report(task_id, "st-a", "progress")
    out_of_range = network.report(
        task_id, "st-a", "progress", progress={"round": 0, "rounds": 5}
    )

    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "missing_progress"
    assert out_of_range.status_code == 422


def test_progress_after_end_ignored(network: Network) -> None:
    request_id = network.submit()["id"]
    task_id = network.approve_all(request_id)["task_id"]
    network.report(task_id, "st-a", "completed", result={"status": "released"})

    response = network.report(
        task_id, "st-a", "progress", progress={"round": 1, "rounds": 5}
    )

    assert response.status_code == 200
    assert party_progress(network, request_id)["st-a"] is None
