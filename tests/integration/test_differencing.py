"""Differencing: two queries whose populations differ by a few persons."""

from __future__ import annotations

import pytest

from linksight.network import LocalNetwork, lung_data


@pytest.fixture(scope="module")
def lung_network(tmp_path_factory):
    """A network of its own, with the default differencing window of 20."""
    network = LocalNetwork(tmp_path_factory.mktemp("differencing"))
    network.start_hub()
    network.set_up_lung_study()
    network.start_stations()
    yield network
    network.stop()


def _run(network, query: str) -> dict:
    request = network.submit(query, purpose="differencing test")
    network.approve_all(request["id"])
    final = network.wait_for(request["id"])
    return {"request": final, **network.result(request["id"])["result"]}


def test_near_identical_filters_are_refused(lung_network):
    # One patient is 40 years old: age >= 40 and age >= 41 differ by him alone.
    frame = lung_data()
    first = _run(lung_network, "SELECT sum(time) FROM lung WHERE age >= 40")
    second = _run(lung_network, "SELECT sum(time) FROM lung WHERE age >= 41")
    failed = [c for c in second["checks"] if not c["passed"]]
    assert int((frame["age"] == 40).sum()) == 1
    assert first["status"] == "released"
    assert second["status"] == "blocked"
    assert second["rows"] == []
    assert second["blocked"]["rule"] == "differencing"
    assert f"request(s) {first['request']['id']}" in second["blocked"]["message"]
    assert {c["rule"] for c in failed} == {"differencing"}


def test_one_missing_value_filter_is_refused(lung_network):
    # Requiring ph.karno leaves out the one man whose score is missing, so the
    # two results together would describe him alone.
    first = _run(lung_network, "SELECT mean(meal.cal) FROM lung WHERE sex == 1")
    second = _run(
        lung_network,
        "SELECT mean(meal.cal) FROM lung WHERE sex == 1 and ph.karno IS NOT NULL",
    )
    frame = lung_data()
    men = frame[frame["sex"] == 1]
    differing = int(men["ph.karno"].isna().sum())
    assert 1 <= differing < 10
    assert first["status"] == "released"
    assert second["blocked"]["rule"] == "differencing"


def test_same_or_distant_populations_pass(lung_network):
    first = _run(lung_network, "SELECT count(*) FROM lung WHERE age >= 60")
    same = _run(lung_network, "SELECT mean(age) FROM lung WHERE age >= 60")
    distant = _run(lung_network, "SELECT count(*) FROM lung WHERE age >= 70")
    assert first["status"] == "released"
    assert same["status"] == "released"
    assert distant["status"] == "released"
    assert any(c["rule"] == "differencing" for c in distant["checks"])


def test_x_y_x_or_y_attack_is_refused(lung_network):
    # 25 patients have ph.karno <= 60 and 20 are under 50, and one is both.
    # No two of the three populations differ by fewer than 10 persons, so the
    # differencing check passes, but |X| + |Y| - |X or Y| is that patient.
    frame = lung_data()
    low_karno = (frame["ph.karno"] <= 60).fillna(False).astype(bool)
    young = (frame["age"] < 50).fillna(False).astype(bool)

    first = _run(lung_network, "SELECT count(*) FROM lung WHERE ph.karno <= 60")
    second = _run(lung_network, "SELECT count(*) FROM lung WHERE age < 50")
    third = _run(
        lung_network, "SELECT count(*) FROM lung WHERE ph.karno <= 60 or age < 50"
    )

    assert int((low_karno & young).sum()) == 1
    either = low_karno | young
    assert int((low_karno ^ young).sum()) >= 10
    assert int((either & ~low_karno).sum()) >= 10
    assert int((either & ~young).sum()) >= 10
    assert first["status"] == "released"
    assert first["rows"][0]["count(*)"] == int(low_karno.sum())
    assert second["status"] == "released"
    assert second["rows"][0]["count(*)"] == int(young.sum())

    assert third["status"] == "blocked"
    assert third["rows"] == []
    assert third["blocked"]["rule"] == "overlapping_filters"
    message = third["blocked"]["message"]
    assert str(first["request"]["id"]) in message
    assert str(second["request"]["id"]) in message
    assert "1 to 9 persons" in message
    failed = {c["rule"] for c in third["checks"] if not c["passed"]}
    assert failed == {"overlapping_filters"}
    passed = {c["rule"] for c in third["checks"] if c["passed"]}
    assert {"min_count", "differencing"} <= passed


# Follow-up filters a scientist might send after the queries above. A rule
# that every region of three overlapping populations contains 0 or at least
# 10 persons rejects each of them, while the exact test releases them all.
FOLLOW_UPS = [
    "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex",
    "SELECT count(*) FROM lung WHERE age >= 65",
    "SELECT mean(time) FROM lung WHERE status == 2",
    "SELECT count(*) FROM lung WHERE ph.ecog <= 1 and age >= 60",
    "SELECT count(*) FROM lung WHERE age >= 50 and age < 70",
    "SELECT count(*) FROM lung WHERE status == 2 and sex == 2",
    "SELECT mean(age) FROM lung WHERE ph.karno < 80",
    "SELECT count(*) FROM lung WHERE age >= 60 and sex == 2",
]


def test_ordinary_follow_ups_pass(lung_network):
    frame = lung_data()
    for query in FOLLOW_UPS:
        result = _run(lung_network, query)
        failed = [c["rule"] for c in result["checks"] if not c["passed"]]
        assert result["status"] == "released", (query, failed)
        triple_checks = [
            c for c in result["checks"] if c["rule"] == "overlapping_filters"
        ]
        assert len(triple_checks) == 1, query
    # The last one against pandas on the pooled data.
    expected = int(((frame["age"] >= 60) & (frame["sex"] == 2)).sum())
    assert result["rows"][0]["count(*)"] == expected
