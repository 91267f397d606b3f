"""End to end: a real hub, three real stations and MPyC parties on loopback.

Every analysis is compared with pandas on the pooled NCCTG lung data.
"""

from __future__ import annotations

import shutil
import sqlite3
import time

import httpx
import pytest

from linksight.demo import DEMO_QUERIES, compare_records
from linksight.network import lung_data
from linksight.result_encryption import open_result, read_private_key
from station.config import load_config
from station.ledger import StationLedger

QUERIES = {q.name: q for q in DEMO_QUERIES}


def _run(network, query: str) -> tuple[dict, dict]:
    request = network.submit(query, purpose="integration test")
    assert request["state"] == "awaiting_approval", request
    network.approve_all(request["id"])
    request = network.wait_for(request["id"])
    return request, network.result(request["id"])["result"]


@pytest.mark.parametrize(
    "name",
    [
        "count by sex",
        "age by sex",
        "weight loss by sex",
        "poor performance score by sex",
    ],
)
def test_query_equals_pooled_pandas(lung_network, name):
    demo_query = QUERIES[name]
    request, result = _run(lung_network, demo_query.query)
    pooled = demo_query.pooled(lung_data())
    assert request["state"] == "completed"
    assert result["status"] == "released"
    assert compare_records(result["rows"], pooled, result["group_by"]) == []


def test_query_sum_and_filter_in_list(lung_network):
    query = (
        "SELECT count(*), sum(meal.cal), var(wt.loss), count(wt.loss) FROM lung "
        "WHERE status == 2 and ph.ecog IN (0, 1) GROUP BY sex"
    )
    _, result = _run(lung_network, query)
    frame = lung_data()
    subset = frame[(frame["status"] == 2) & frame["ph.ecog"].isin([0, 1])]
    by_sex = {row["sex"]: row for row in result["rows"]}
    assert result["status"] == "released"
    for sex, group in subset.groupby("sex"):
        row = by_sex[int(sex)]
        assert row["count(*)"] == len(group)
        assert row["sum(meal.cal)"] == pytest.approx(group["meal.cal"].sum(), abs=1e-6)
        assert row["sum(meal.cal).n"] == group["meal.cal"].count()
        assert row["count(wt.loss)"] == group["wt.loss"].count()
        assert "count(wt.loss).n" not in result["columns"]
        assert row["var(wt.loss)"] == pytest.approx(
            group["wt.loss"].astype(float).var(), abs=1e-6
        )


def test_ungrouped_mean_equals_pandas(lung_network):
    _, result = _run(lung_network, "SELECT mean(age) FROM lung")
    frame = lung_data()
    assert result["status"] == "released"
    assert result["rows"][0]["mean(age)"] == pytest.approx(frame["age"].mean(), 1e-9)
    assert result["rows"][0]["mean(age).n"] == len(frame)


def test_crosstab_is_blocked_by_min_count(lung_network):
    request, result = _run(lung_network, QUERIES["sex by ECOG score"].query)
    assert request["state"] == "blocked_by_disclosure_control"
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_count"
    assert "sex=1, ph.ecog=3" in result["blocked"]["message"]
    assert "coarser" in result["blocked"]["message"]


def test_pooled_group_of_small_parts_is_released(lung_network):
    # 16 patients aged 75 or more: 6 at station A, 3 at B and 7 at C. No
    # station part reaches 10 but the pool does, and the parts stay secret.
    frame = lung_data()
    old = frame[frame["age"] >= 75]
    _, result = _run(lung_network, "SELECT count(*) FROM lung WHERE age >= 75")
    assert len(old) == 16
    assert result["status"] == "released"
    assert result["rows"][0]["count(*)"] == 16


def _station_events(network, request_id) -> dict[str, list[str]]:
    events = {}
    for station in network.stations:
        ledger = StationLedger(load_config(station.config_path).station.state_dir)
        events[station.name] = [
            r["event"]
            for r in ledger.audit.records()
            if r["objects"].get("request") == str(request_id)
        ]
    return events


def test_unapproved_request_never_runs(lung_network):
    waiting = lung_network.submit("SELECT mean(time) FROM lung GROUP BY status")
    approved, _ = _run(lung_network, "SELECT mean(time) FROM lung")
    time.sleep(2)  # four more station poll intervals
    current = lung_network.call(
        "GET", f"/requests/{waiting['id']}", lung_network.scientist_token
    )
    assert current["state"] == "awaiting_approval"
    assert current["task_id"] is None
    for events in _station_events(lung_network, waiting["id"]).values():
        assert events == []
    # The approved request, submitted later, ran at every station.
    for events in _station_events(lung_network, approved["id"]).values():
        assert events == ["task_accepted", "task_completed"]


def test_call_without_token_is_401(lung_network):
    response = httpx.get(f"{lung_network.hub_url}/requests")
    assert response.status_code == 401


def test_scientist_approving_is_403(lung_network):
    request = lung_network.submit("SELECT count(*) FROM lung GROUP BY status")
    response = httpx.post(
        f"{lung_network.hub_url}/requests/{request['id']}/approve",
        headers={"Authorization": f"Bearer {lung_network.scientist_token}"},
        json={},
    )
    assert response.status_code == 403


def test_station_audit_chain_detects_edit(lung_network, tmp_path):
    _run(lung_network, QUERIES["count by sex"].query)
    station = lung_network.stations[0]
    state_dir = load_config(station.config_path).station.state_dir
    report = StationLedger(state_dir).audit.verify()
    # Tamper with a copy, so that the running station's log stays intact.
    shutil.copy(state_dir / "station.db", tmp_path / "station.db")
    with sqlite3.connect(tmp_path / "station.db") as connection:
        connection.execute("UPDATE audit_log SET outcome = 'edited' WHERE seq = 2")
    tampered = StationLedger(tmp_path).audit.verify()
    assert report.ok, report.describe()
    assert report.records >= 3
    assert not tampered.ok
    assert tampered.first_bad_seq == 2


def test_requester_own_part_is_subtracted(lung_network):
    # 20 patients under 50: 5 at A, 11 at B, 4 at C. A scientist of
    # Hospital B could subtract B's 11 and learn that 9 come from elsewhere.
    admin = lung_network.admin_token
    insider = lung_network.call(
        "POST",
        "/users",
        admin,
        json={"name": "hanna", "organisation": "Hospital B", "roles": ["scientist"]},
    )
    key_path = lung_network.root / "hanna-result.key"
    lung_network.register_result_key(insider["token"], key_path)
    query = "SELECT count(*) FROM lung WHERE age < 50"
    request = lung_network.call(
        "POST",
        "/requests",
        insider["token"],
        json={
            "collaboration": lung_network.collaboration,
            "query": query,
            "purpose": "integration test",
        },
    )
    lung_network.approve_all(request["id"])
    final = lung_network.wait_for(request["id"], token=insider["token"])
    sealed = lung_network.call(
        "GET", f"/requests/{request['id']}/result", insider["token"]
    )["result"]
    result = open_result(sealed, read_private_key(key_path), request["id"])
    rules = {c["rule"]: c["passed"] for c in result["checks"]}
    assert final["state"] == "blocked_by_disclosure_control"
    assert rules == {"min_count": True, "min_count_without_requester": False}
    assert result["blocked"]["rule"] == "min_count_without_requester"
    assert result["rows"] == []
