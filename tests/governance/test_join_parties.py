"""The hub's choice of the parties of a joined query."""

from __future__ import annotations

from governance.models import Station
from governance.submission import join_parties
from linksight.query import parse_query

QUERY = "SELECT count(*) FROM hospital JOIN gp USING (person_id)"


def _stations(*names: str) -> dict[str, Station]:
    return {name: Station(name=name) for name in names}


def test_join_parties_adds_helper():
    stations = _stations("a-hospital", "b-gp", "c-lab", "d-other")
    holders = {
        "hospital": [stations["a-hospital"]],
        "gp": [stations["b-gp"]],
        "lung": [stations["d-other"], stations["c-lab"]],
    }

    parties, violation = join_parties(parse_query(QUERY), holders, 3)

    assert violation is None
    assert [s.name for s in parties] == ["a-hospital", "b-gp", "c-lab"]


def test_join_parties_needs_no_helper():
    stations = _stations("a", "b", "c")
    holders = {"hospital": [stations["a"]], "gp": [stations["b"]], "x": [stations["c"]]}

    parties, violation = join_parties(parse_query(QUERY), holders, 2)

    assert violation is None
    assert [s.name for s in parties] == ["a", "b"]


def test_join_parties_dataset_at_two_stations():
    stations = _stations("a", "b", "c")
    holders = {"hospital": [stations["a"], stations["c"]], "gp": [stations["b"]]}

    _parties, violation = join_parties(parse_query(QUERY), holders, 3)

    assert violation is not None
    assert violation.rule == "join_placement"
    assert "dataset 'hospital' is held by stations a, c" in violation.message


def test_join_parties_two_datasets_at_one_station():
    stations = _stations("a", "b")
    holders = {"hospital": [stations["a"]], "gp": [stations["a"]]}

    _parties, violation = join_parties(parse_query(QUERY), holders, 3)

    assert violation is not None
    assert violation.rule == "join_placement"
    assert "'hospital' and 'gp' are both at station 'a'" in violation.message
