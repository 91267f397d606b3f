"""The overlap(id) query: syntax, schema checks and the identifier rule."""

from __future__ import annotations

import pytest

from linksight.query import QueryError, QuerySpec, format_query, parse_query
from linksight.rules import CollaborationRules, check_query
from linksight.schema import DatasetSchema

SCHEMA = DatasetSchema.model_validate(
    {
        "name": "covid",
        "columns": [
            {"name": "subject_id", "type": "text", "role": "identifier"},
            {"name": "result", "type": "categorical", "levels": ["neg", "pos"]},
            {"name": "age", "type": "integer", "min": 0, "max": 120},
            {"name": "note", "type": "text"},
        ],
    }
)
SCHEMAS = {"covid": SCHEMA}
STATIONS = ["station-a", "station-b", "station-c"]


def test_overlap_parses_with_at_filter_group():
    text = (
        "SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-b') "
        "WHERE age >= 18 GROUP BY result"
    )
    spec = parse_query(text, SCHEMAS)
    assert spec.kind == "overlap"
    assert spec.identifier == "subject_id"
    assert spec.lists == ["station-a", "station-b"]
    assert spec.group_by == ["result"]
    assert spec.aggregates == []
    assert parse_query(format_query(spec), SCHEMAS) == spec


def test_overlap_uses_identifier_as_link():
    spec = parse_query("SELECT overlap(subject_id) FROM covid", SCHEMAS)
    assert spec.columns_used() == {"subject_id": {"link"}}
    assert spec.lists == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT overlap(age) FROM covid", "'age' is not an identifier"),
        ("SELECT count(subject_id) FROM covid", "may only be the argument"),
        (
            "SELECT overlap(subject_id) FROM covid GROUP BY subject_id",
            "may only be the argument",
        ),
        (
            "SELECT overlap(subject_id) FROM covid WHERE subject_id == '1'",
            "may only be the argument",
        ),
        ("SELECT overlap(subject_id), count(*) FROM covid", "only item"),
        ("SELECT count(*) FROM covid AT ('a', 'b')", "AT names the stations"),
        ("SELECT overlap(subject_id) FROM covid AT ('a')", "at least two"),
        ("SELECT overlap(subject_id) FROM covid AT ('a', 'a')", "listed twice"),
        ("SELECT overlap(subject_id) FROM covid AT (a, b)", "in quotes"),
    ],
)
def test_overlap_query_errors(text, message):
    with pytest.raises(QueryError, match=message):
        parse_query(text, SCHEMAS)


def test_spec_rejects_overlap_with_statistics():
    with pytest.raises(ValueError, match="no statistics"):
        QuerySpec.model_validate(
            {
                "dataset": "covid",
                "kind": "overlap",
                "identifier": "subject_id",
                "aggregates": [{"func": "count"}],
            }
        )


def test_rules_accept_overlap():
    spec = parse_query("SELECT overlap(subject_id) FROM covid", SCHEMAS)
    assert check_query(spec, SCHEMA, CollaborationRules(), 3, STATIONS) is None


def test_rules_reject_unknown_station():
    spec = parse_query(
        "SELECT overlap(subject_id) FROM covid AT ('station-a', 'station-x')"
    )
    violation = check_query(spec, SCHEMA, CollaborationRules(), 3, STATIONS)
    assert violation is not None
    assert violation.rule == "known_stations"
    assert "station-x" in violation.message


def test_rules_reject_identifier_as_filter():
    # Built without the schema, so that the parser's own check is skipped.
    spec = parse_query("SELECT count(*) FROM covid WHERE subject_id == '1'")
    violation = check_query(spec, SCHEMA, CollaborationRules(), 3, STATIONS)
    assert violation is not None
    assert violation.rule == "identifier_use"
    assert "filter" in violation.message


def test_rules_reject_overlap_of_attribute():
    spec = parse_query("SELECT overlap(note) FROM covid")
    violation = check_query(spec, SCHEMA, CollaborationRules(), 3, STATIONS)
    assert violation is not None
    assert violation.rule == "identifier_use"


def test_rules_can_disallow_overlap():
    spec = parse_query("SELECT overlap(subject_id) FROM covid", SCHEMAS)
    rules = CollaborationRules(allowed_analyses=["aggregate"])
    violation = check_query(spec, SCHEMA, rules, 3, STATIONS)
    assert violation is not None
    assert violation.rule == "allowed_analyses"
