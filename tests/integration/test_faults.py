"""Faults on real processes: a forged hub key, a station that is down."""

from __future__ import annotations

import re
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from linksight import signing
from linksight.network import LocalNetwork
from station.config import load_config
from station.ledger import StationLedger

SHORT_MPC_TIMEOUT = "8"


def _start(root, *, forge_key: bool = False) -> LocalNetwork:
    network = LocalNetwork(
        root, environment={"LINKSIGHT_HUB_TASK_TIMEOUT_SECONDS": SHORT_MPC_TIMEOUT}
    )
    network.start_hub()
    network.set_up_lung_study()
    if forge_key:
        # Every station pins a key that is not the hub's: as if the tasks
        # came from an impostor, no signature can verify.
        other = signing.public_key_text(Ed25519PrivateKey.generate())
        for station in network.stations:
            text = station.config_path.read_text()
            text = re.sub(r'hub_public_key = ".*"', f'hub_public_key = "{other}"', text)
            station.config_path.write_text(text)
    network.start_stations()
    return network


@pytest.fixture(scope="module")
def forged_network(tmp_path_factory):
    network = _start(tmp_path_factory.mktemp("forged"), forge_key=True)
    yield network
    network.stop()


@pytest.fixture(scope="module")
def fault_network(tmp_path_factory):
    network = _start(tmp_path_factory.mktemp("faults"))
    yield network
    network.stop()


def _station_events(network: LocalNetwork, request_id: str) -> dict[str, list[str]]:
    events = {}
    for station in network.stations:
        state_dir = load_config(station.config_path).station.state_dir
        records = StationLedger(state_dir).audit.records()
        events[station.name] = [
            r["event"]
            for r in records
            if r["objects"].get("request") == str(request_id)
        ]
    return events


def test_unverified_signature_is_refused(forged_network):
    request = forged_network.submit("SELECT count(*) FROM lung GROUP BY sex")
    forged_network.approve_all(request["id"])
    final = forged_network.wait_for(request["id"], timeout=60)
    events = _station_events(forged_network, request["id"])
    assert final["state"] == "failed"
    assert "signature" in final["error"]
    assert re.search(r"station station-[abc]", final["error"])
    assert any(events.values())
    for station, station_events in events.items():
        assert "task_accepted" not in station_events, station
        assert set(station_events) <= {"task_refused"}, station


def test_down_station_fails_task_with_its_name(fault_network):
    fault_network.stop_station("station-c")
    request = fault_network.submit("SELECT mean(age) FROM lung GROUP BY sex")
    fault_network.approve_all(request["id"])
    started = time.monotonic()
    final = fault_network.wait_for(request["id"], timeout=90)
    elapsed = time.monotonic() - started
    result = fault_network.call(
        "GET",
        f"/requests/{request['id']}/result",
        fault_network.scientist_token,
        expected=(409,),
    )
    assert final["state"] == "failed"
    assert "station-c" in final["error"]
    assert "did not join" in final["error"]
    assert elapsed < 60
    assert result["detail"]["code"] == "not_ready"
