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
