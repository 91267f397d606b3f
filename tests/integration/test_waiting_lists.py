"""Waiting-list deduplication end to end on the COVID testing data.

A real hub and three stations, each holding one clinic's tests, answer
overlap(subject_id) queries under the blinding protocol and MPC. Every
released figure is compared with pandas on the pooled lists.
"""

from __future__ import annotations

from linksight.network import covid_schema_path, covid_waiting_lists
from linksight.overlap_reference import compare_overlap, pooled_overlap
from linksight.schema import load_schema
from linksight_kernel.results import Result
from station.config import load_config
from station.ledger import StationLedger

COLLABORATION = "waiting-lists"
SCHEMA = load_schema(covid_schema_path())
RULES = SCHEMA.column("subject_id").normalise
TWO_LARGEST = "AT ('station-a', 'station-b')"


def _run(network, query: str) -> tuple[dict, dict]:
    request = network.submit(query, "integration test", COLLABORATION)
    assert request["state"] == "awaiting_approval", request
    network.approve_all(request["id"])
    request = network.wait_for(request["id"])
    return request, network.result(request["id"])["result"]


def _figures(result: dict) -> dict[tuple[str, str], int]:
    return {(r["measure"], r["lists"]): r["persons"] for r in result["rows"]}


def _pooled(stations, where=None, group_by=None):
    lists = covid_waiting_lists()
    frames = {name: lists[name] for name in stations}
    if where is not None:
        frames = {name: frame[where(frame)] for name, frame in frames.items()}
    levels = {c: SCHEMA.column(c).levels for c in group_by or []}
    return pooled_overlap(frames, "subject_id", group_by, levels, RULES)


def test_two_largest_clinics_match_pooled(waiting_list_network):
    query = f"SELECT overlap(subject_id) FROM covid {TWO_LARGEST}"
    request, result = _run(waiting_list_network, query)
    figures = _figures(result)
    pooled = _pooled(["station-a", "station-b"])
    assert request["state"] == "completed"
    assert result["status"] == "released"
    assert figures[("list_size", "station-a")] == 6894
    assert figures[("list_size", "station-b")] == 3080
    assert figures[("pairwise", "station-a, station-b")] == 148
    assert figures[("unique", "station-a, station-b")] == 9826
    assert compare_overlap(result["rows"], pooled, []) == []
    # No identifier is invalid, and a count below 10 is suppressed.
    invalid = [r for r in result["rows"] if r["measure"] == "invalid"]
    assert [row["persons"] for row in invalid] == [None, None]
    summary = repr(Result.from_json(waiting_list_network.result(request["id"]), ""))
    assert "and the 2 figure(s) that failed are suppressed (shown as missing)" in (
        summary
    )


def test_grouped_by_gender_matches_pooled(waiting_list_network):
    query = f"SELECT overlap(subject_id) FROM covid {TWO_LARGEST} GROUP BY gender"
    _, result = _run(waiting_list_network, query)
    pooled = _pooled(["station-a", "station-b"], group_by=["gender"])
    assert result["status"] == "released"
    assert result["group_by"] == ["gender"]
    assert compare_overlap(result["rows"], pooled, ["gender"]) == []


def test_three_clinics_blocked_by_triple_overlap(waiting_list_network):
    # Only 7 persons were tested at all three clinics.
    request, result = _run(
        waiting_list_network, "SELECT overlap(subject_id) FROM covid"
    )
    pooled = {
        (r["measure"], r["lists"]): r["persons"]
        for r in _pooled(["station-a", "station-b", "station-c"])
    }
    assert pooled[("exactly_3", "station-a, station-b, station-c")] == 7
    assert request["state"] == "blocked_by_disclosure_control"
    assert result["status"] == "blocked"
    assert result["rows"] == []
    assert result["blocked"]["rule"] == "min_count"
    assert "exactly_3" in result["blocked"]["message"]


def test_differencing_query_is_refused(waiting_list_network):
    # Tests up to day 80 and up to day 81 differ by one person on both lists.
    base = f"SELECT overlap(subject_id) FROM covid {TWO_LARGEST} WHERE pan_day"
    pooled_80 = _pooled(["station-a", "station-b"], where=lambda f: f["pan_day"] <= 80)
    first_request, first = _run(waiting_list_network, f"{base} <= 80")
    again_request, again = _run(waiting_list_network, f"{base} <= 80")
    _, second = _run(waiting_list_network, f"{base} <= 81")
    assert first["status"] == "released"
    assert compare_overlap(first["rows"], pooled_80, []) == []
    assert again["status"] == "released"
    assert second["status"] == "blocked"
    assert second["blocked"]["rule"] == "differencing"
    # The message names the newest earlier answer, the checks every one.
    assert f"request {again_request['id']}" in second["blocked"]["message"]
    assert "possible differencing attack" in second["blocked"]["message"]
    # Invalid-identifier counts below 10 are suppressed, never blocking.
    failed = [
        c for c in second["checks"] if not c["passed"] and c.get("measure") != "invalid"
    ]
    assert {c["rule"] for c in failed} == {"differencing"}
    assert [c["request"] for c in failed] == [
        str(again_request["id"]),
        str(first_request["id"]),
    ]
    station = waiting_list_network.stations[0]
    ledger = StationLedger(load_config(station.config_path).station.state_dir)
    logged = [
        r for r in ledger.audit.records() if r["event"] == "differencing_suspected"
    ]
    assert len(logged) == 1
    assert logged[0]["details"]["earlier_requests"] == [
        str(again_request["id"]),
        str(first_request["id"]),
    ]
    assert again_request["state"] == "completed"


def test_short_list_is_refused(waiting_list_network):
    # From age 60 the clinical lab lists 134 persons, the emergency dept 3.
    query = f"SELECT overlap(subject_id) FROM covid {TWO_LARGEST} WHERE age >= 60"
    pooled = _pooled(["station-a", "station-b"], where=lambda f: f["age"] >= 60)
    sizes = {r["lists"]: r["persons"] for r in pooled if r["measure"] == "list_size"}
    request, result = _run(waiting_list_network, query)
    assert sizes == {"station-a": 134, "station-b": 3}
    assert request["state"] == "blocked_by_disclosure_control"
    assert result["blocked"]["rule"] == "min_list_size"
    assert "station-b" in result["blocked"]["message"]
    assert "station-a" not in result["blocked"]["message"]
