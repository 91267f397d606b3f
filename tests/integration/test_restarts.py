"""Restarts on real processes: nothing waiting or running is lost."""

from __future__ import annotations

import time

import pytest

from linksight.network import LocalNetwork
from station.config import load_config
from station.ledger import StationLedger

QUERY = "SELECT count(*), mean(age) FROM lung GROUP BY sex"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    network = LocalNetwork(
        tmp_path_factory.mktemp("restarts"),
        environment={"LINKSIGHT_HUB_TASK_TIMEOUT_SECONDS": "60"},
    )
    network.start_hub()
    network.set_up_lung_study()
    network.start_stations()
    yield network
    network.stop()


def _wait_all_started(network, request_id, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = network.call(
            "GET", f"/requests/{request_id}", network.scientist_token
        )
        if all(party["status"] == "started" for party in request["parties"]):
            return request
        time.sleep(0.05)
    raise AssertionError(f"the stations never all started request {request_id}")


def test_hub_restart_keeps_waiting_request(network):
    request = network.submit(QUERY)
    network.stop_hub()
    network.restart_hub()
    network.approve_all(request["id"])
    final = network.wait_for(request["id"], timeout=120)
    assert final["state"] == "completed"


def test_hub_crash_during_run_loses_no_result(network):
    request = network.submit(QUERY)
    network.approve_all(request["id"])
    _wait_all_started(network, request["id"])
    logs = [network.root / "logs" / f"{s.name}.log" for s in network.stations]
    offsets = [len(log.read_text()) for log in logs]
    network.stop_hub(kill=True)
    # Each station finishes the MPC run and then fails to report it.
    deadline = time.monotonic() + 120
    for log, offset in zip(logs, offsets, strict=True):
        while "reporting completed failed" not in log.read_text()[offset:]:
            assert time.monotonic() < deadline, f"{log.name}: no failed report"
            time.sleep(0.2)
    network.restart_hub()
    final = network.wait_for(request["id"], timeout=120)
    result = network.result(request["id"])["result"]
    assert final["state"] == "completed"
    assert result["status"] == "released"
    assert sum(row["count(*)"] for row in result["rows"]) == 228
    for station in network.stations:
        log = (network.root / "logs" / f"{station.name}.log").read_text()
        assert "resending completed" in log


def test_station_restart_mid_queue_runs_each_once(network):
    network.stop_station("station-c")
    requests = [network.submit(QUERY) for _ in range(2)]
    for request in requests:
        network.approve_all(request["id"])
    time.sleep(1)
    network.start_station("station-c")
    finals = [network.wait_for(r["id"], timeout=150) for r in requests]
    state_dir = load_config(network.stations[2].config_path).station.state_dir
    records = StationLedger(state_dir).audit.records()
    for request, final in zip(requests, finals, strict=True):
        runs = [
            r
            for r in records
            if r["event"] == "task_accepted"
            and r["objects"].get("request") == str(request["id"])
        ]
        assert final["state"] == "completed"
        assert len(runs) == 1
