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
