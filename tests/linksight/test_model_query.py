"""The ols(...) query: formula syntax, schema checks, rules and the design layout."""

from __future__ import annotations

import pytest

from linksight.network import lung_schema_path
from linksight.query import QueryError, QuerySpec, format_query, parse_query
from linksight.rules import CollaborationRules, check_query
from linksight.schema import load_schema
from station.regression import build_design, fixed_point_size

SCHEMA = load_schema(lung_schema_path())
SCHEMAS = {"lung": SCHEMA}


def test_ols_parses_and_round_trips():
    text = "SELECT ols(time ~ age + C(sex) + ph.karno) FROM lung WHERE ph.ecog <= 2"
    spec = parse_query(text, SCHEMAS)
    assert spec.kind == "ols"
    assert spec.model is not None
    assert spec.model.response == "time"
    assert [t.label for t in spec.model.terms] == ["age", "C(sex)", "ph.karno"]
    assert spec.aggregates == []
    assert format_query(spec) == text
    assert parse_query(format_query(spec), SCHEMAS) == spec


def test_ols_columns_used_by_role():
    spec = parse_query("SELECT ols(time ~ age + C(sex)) FROM lung", SCHEMAS)
    assert spec.columns_used() == {
        "time": {"output"},
        "age": {"covariate"},
        "sex": {"factor"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT ols(time ~ sex) FROM lung", "writing C(sex)"),
        ("SELECT ols(time ~ C(age)) FROM lung", "write age without C()"),
        ("SELECT ols(time age) FROM lung", "expected '~' after the response"),
        ("SELECT ols(time ~ age + age) FROM lung", "'age' is in the formula twice"),
        ("SELECT ols(time ~ time) FROM lung", "cannot also be a term"),
        ("SELECT ols(time ~ age) FROM lung GROUP BY sex", "takes no GROUP BY"),
        ("SELECT count(*), ols(time ~ age) FROM lung", "the only item after SELECT"),
        ("SELECT ols(time ~ agee) FROM lung", "did you mean 'age'"),
        ("SELECT ols(time ~ C(sex) FROM lung", "unclosed parenthesis after ols"),
    ],
)
def test_ols_syntax_errors(text, message):
    with pytest.raises(QueryError) as caught:
        parse_query(text, SCHEMAS)
    assert message in str(caught.value)


def test_ols_spec_rejects_aggregates():
    with pytest.raises(ValueError, match="one model and no statistics"):
        QuerySpec(dataset="lung", kind="ols", aggregates=[{"func": "count"}])


def test_ols_rule_rejects_text_factor():
    # A spec built without the parser, as the hub re-checks stored requests.
    spec = QuerySpec(
        dataset="lung",
        kind="ols",
        model={"response": "time", "terms": [{"column": "age", "categorical": True}]},
    )
    violation = check_query(spec, SCHEMA, CollaborationRules(), 3)
    assert violation is not None
    assert violation.rule == "categorical_groups"
    assert "C() takes only categorical columns" in violation.message


def test_ols_not_allowed_analysis():
    spec = parse_query("SELECT ols(time ~ age) FROM lung", SCHEMAS)
    rules = CollaborationRules(allowed_analyses=["aggregate"])
    violation = check_query(spec, SCHEMA, rules, 3)
    assert violation is not None
    assert violation.rule == "allowed_analyses"


def test_design_names_follow_statsmodels():
    spec = parse_query("SELECT ols(time ~ C(ph.ecog) + age) FROM lung", SCHEMAS)
    design = build_design(spec, SCHEMA)
    assert design.names == [
        "Intercept",
        "C(ph.ecog)[T.1]",
        "C(ph.ecog)[T.2]",
        "C(ph.ecog)[T.3]",
        "C(ph.ecog)[T.4]",
        "age",
    ]
    assert design.scales == [1.0, 1.0, 1.0, 1.0, 1.0, 110.0]
    assert design.response_scale == 10000.0
    assert design.factors[0].reference == "0"
    assert design.factors[0].design_columns == [1, 2, 3, 4]
    assert design.width == 1 + 21 + 6 + 1


def test_design_needs_declared_range():
    schema = SCHEMA.model_copy(deep=True)
    schema.column("age").max = None
    spec = parse_query("SELECT ols(time ~ age) FROM lung", SCHEMAS)
    with pytest.raises(ValueError, match="declare min and max"):
        build_design(spec, schema)


def test_fixed_point_size_covers_pooled_rows():
    # Three stations of 2^32 rows each: N < 2^34, so f - 1 >= 34 + 64.
    fraction_bits = fixed_point_size(3)
    assert fraction_bits % 8 == 0
    assert fraction_bits - 1 >= 34 + 64
