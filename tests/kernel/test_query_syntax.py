"""The query language: a table of valid queries and of mistakes with their messages.

The client, the magics and the command line all parse with
`linksight.query.parse_query`, so these messages are what a scientist reads.
"""

from __future__ import annotations

import pytest

from linksight.network import lung_schema_path
from linksight.query import QueryError, QuerySpec, format_query, parse_query
from linksight.schema import load_schema

SCHEMAS = {"lung": load_schema(lung_schema_path())}

# (query, expected spec fields other than defaults)
VALID = [
    (
        "SELECT count(*) FROM lung",
        {"dataset": "lung", "aggregates": [{"func": "count"}]},
    ),
    (
        "select mean(age), var(age) from lung group by sex",
        {
            "dataset": "lung",
            "aggregates": [
                {"func": "mean", "column": "age"},
                {"func": "var", "column": "age"},
            ],
            "group_by": ["sex"],
        },
    ),
    (
        "SELECT avg(age) FROM lung",
        {"dataset": "lung", "aggregates": [{"func": "mean", "column": "age"}]},
    ),
    (
        "SELECT count(*), mean(age) FROM lung WHERE ph.ecog >= 2 GROUP BY sex",
        {
            "dataset": "lung",
            "aggregates": [{"func": "count"}, {"func": "mean", "column": "age"}],
            "group_by": ["sex"],
            "where": {"type": "compare", "column": "ph.ecog", "op": ">=", "value": 2},
        },
    ),
    (
        "SELECT sum(meal.cal) FROM lung WHERE status = 2 AND ph.ecog IN (0, 1)",
        {
            "dataset": "lung",
            "aggregates": [{"func": "sum", "column": "meal.cal"}],
            "where": {
                "type": "and",
                "items": [
                    {"type": "compare", "column": "status", "op": "==", "value": 2},
                    {"type": "in", "column": "ph.ecog", "values": [0, 1]},
                ],
            },
        },
    ),
    (
        "SELECT count(*) FROM lung WHERE not (age < 50 or wt.loss IS NULL)",
        {
            "dataset": "lung",
            "aggregates": [{"func": "count"}],
            "where": {
                "type": "not",
                "item": {
                    "type": "or",
                    "items": [
                        {"type": "compare", "column": "age", "op": "<", "value": 50},
                        {"type": "is_null", "column": "wt.loss"},
                    ],
                },
            },
        },
    ),
    (
        "SELECT crosstab(sex, ph.ecog) FROM lung",
        {
            "dataset": "lung",
            "kind": "crosstab",
            "aggregates": [{"func": "count"}],
            "group_by": ["sex", "ph.ecog"],
        },
    ),
    (
        "SELECT mean(time)\nFROM lung\nWHERE age <> 60\nGROUP BY status, sex;",
        {
            "dataset": "lung",
            "aggregates": [{"func": "mean", "column": "time"}],
            "group_by": ["status", "sex"],
            "where": {"type": "compare", "column": "age", "op": "!=", "value": 60},
        },
    ),
]


@pytest.mark.parametrize(("query", "expected"), VALID)
def test_valid_query_spec(query, expected):
    spec = parse_query(query, SCHEMAS)
    assert spec == QuerySpec.model_validate(expected)


@pytest.mark.parametrize(("query", "_expected"), VALID)
def test_formatted_query_parses_back(query, _expected):
    spec = parse_query(query, SCHEMAS)
    assert parse_query(format_query(spec), SCHEMAS) == spec


# (query, the full str() of the error: message, position, line and caret)
INVALID = [
    (
        "SELECT mean(age FROM lung",
        "unclosed parenthesis after mean: add ')' before FROM (column 12)\n"
        "  SELECT mean(age FROM lung\n"
        "             ^",
    ),
    (
        "SELECT mean(age)) FROM lung",
        "unmatched ')': remove it (column 17)\n"
        "  SELECT mean(age)) FROM lung\n"
        "                  ^",
    ),
    (
        "SELECT mean(agee) FROM lung",
        "unknown column 'agee' in dataset 'lung' (did you mean 'age'?) (column 13)\n"
        "  SELECT mean(agee) FROM lung\n"
        "              ^",
    ),
    (
        "SELECT mean(AGE) FROM lung",
        "unknown column 'AGE' in dataset 'lung' (did you mean 'age'?) (column 13)\n"
        "  SELECT mean(AGE) FROM lung\n"
        "              ^",
    ),
    (
        "SELECT men(age) FROM lung",
        "unknown function 'men' (did you mean 'mean'?); available: count, sum, "
        "mean, var, crosstab, overlap, km, logrank, ols, logit, train "
        "(column 8)\n"
        "  SELECT men(age) FROM lung\n"
        "         ^",
    ),
    (
        "SELECT mean(age) FROM lng",
        "unknown dataset 'lng' (did you mean 'lung'?); available in this "
        "collaboration: lung; a dataset of another collaboration needs its name "
        "(-c in the magics and the CLI, collaboration= in Python) (column 23)\n"
        "  SELECT mean(age) FROM lng\n"
        "                        ^",
    ),
    (
        "SELECT * FROM lung",
        "a query returns statistics, never records: select statistics such as "
        "count(*) or mean(age) instead of * (column 8)\n"
        "  SELECT * FROM lung\n"
        "         ^",
    ),
    (
        "SELECT age FROM lung",
        "'age' is a column, and a query returns only statistics: select one such "
        "as mean(age) or count(*) (column 8)\n"
        "  SELECT age FROM lung\n"
        "         ^",
    ),
    (
        "SELECT mean(age) lung",
        "expected ',' or FROM but found 'lung'; name the dataset, as in FROM lung "
        "(column 18)\n"
        "  SELECT mean(age) lung\n"
        "                   ^",
    ),
    (
        "mean(age) FROM lung",
        "expected SELECT but found 'mean' (column 1)\n  mean(age) FROM lung\n  ^",
    ),
    (
        "SELECT mean(sex) FROM lung",
        "column 'sex' has type categorical; statistics need a numeric column "
        "(use it in GROUP BY instead) (column 13)\n"
        "  SELECT mean(sex) FROM lung\n"
        "              ^",
    ),
    (
        "SELECT mean(age, time) FROM lung",
        "mean() takes one column; write one statistic per column, as in "
        "mean(age), mean(time) (column 16)\n"
        "  SELECT mean(age, time) FROM lung\n"
        "                 ^",
    ),
    (
        "SELECT mean(age) FROM lung GROUP BY age",
        "column 'age' has type integer; only categorical columns can be grouped "
        "on, because every station must know the groups in advance (column 37)\n"
        "  SELECT mean(age) FROM lung GROUP BY age\n"
        "                                      ^",
    ),
    (
        "SELECT mean(age) FROM lung GROUP BY sex, sex",
        "column 'sex' appears twice in the grouping: remove one of them "
        "(column 42)\n"
        "  SELECT mean(age) FROM lung GROUP BY sex, sex\n"
        "                                           ^",
    ),
    (
        "SELECT mean(age) FROM lung GROUP BY sex WHERE age > 60",
        "WHERE must come before GROUP BY (column 41)\n"
        "  SELECT mean(age) FROM lung GROUP BY sex WHERE age > 60\n"
        "                                          ^",
    ),
    (
        "SELECT mean(age) FROM lung WHERE (age > 60",
        "unclosed parenthesis in WHERE: add ')' at the end (column 34)\n"
        "  SELECT mean(age) FROM lung WHERE (age > 60\n"
        "                                   ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE ph.ecog IN (1, 2 GROUP BY sex",
        "unclosed parenthesis after IN: add ')' before GROUP (column 44)\n"
        "  SELECT count(*) FROM lung WHERE ph.ecog IN (1, 2 GROUP BY sex\n"
        "                                             ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE ph.ecog IN ()",
        "IN needs at least one value, as in ph.ecog IN (1, 2) (column 45)\n"
        "  SELECT count(*) FROM lung WHERE ph.ecog IN ()\n"
        "                                              ^",
    ),
    (
        "SELECT mean(age) FROM lung WHERE age > 'old'",
        "column 'age' has type integer; compare it with a number, not the text "
        "'old' (column 40)\n"
        "  SELECT mean(age) FROM lung WHERE age > 'old'\n"
        "                                         ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE sex == 3",
        "3 is not a level of column 'sex'; its levels are 1, 2 (column 40)\n"
        "  SELECT count(*) FROM lung WHERE sex == 3\n"
        "                                         ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE sex == '1'",
        "'1' is not a level of column 'sex': write the level as it is declared, "
        "one of 1, 2 (column 40)\n"
        "  SELECT count(*) FROM lung WHERE sex == '1'\n"
        "                                         ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE sex == male",
        "expected a number or a quoted string but found the name 'male'; quote "
        "text values, as in 'a' (column 40)\n"
        "  SELECT count(*) FROM lung WHERE sex == male\n"
        "                                         ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE 1 == sex",
        "expected a column name but found the value '1'; write the column first, "
        "as in sex == 1 (column 33)\n"
        "  SELECT count(*) FROM lung WHERE 1 == sex\n"
        "                                  ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE age ! 60",
        "unexpected character '!': write != for 'not equal' (column 37)\n"
        "  SELECT count(*) FROM lung WHERE age ! 60\n"
        "                                      ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE status == 'dead",
        "unterminated string: add the closing ' (column 43)\n"
        "  SELECT count(*) FROM lung WHERE status == 'dead\n"
        "                                            ^",
    ),
    (
        "SELECT count(*) FROM lung WHERE age >",
        "expected a number or a quoted string but found the end of the query "
        "(column 38)\n"
        "  SELECT count(*) FROM lung WHERE age >\n"
        "                                       ^",
    ),
    (
        "SELECT count(*) FROM lung GROUP sex",
        "expected BY but found 'sex' (column 33)\n"
        "  SELECT count(*) FROM lung GROUP sex\n"
        "                                  ^",
    ),
    (
        "SELECT count(*) FROM lung GROUP BY sex LIMIT 5",
        "unexpected 'LIMIT' after the end of the query; a query is SELECT ... "
        "FROM dataset [WHERE ...] [GROUP BY ...] (column 40)\n"
        "  SELECT count(*) FROM lung GROUP BY sex LIMIT 5\n"
        "                                         ^",
    ),
    (
        "SELECT crosstab(sex) FROM lung",
        "crosstab needs two columns, as in crosstab(sex, ph.ecog) (column 8)\n"
        "  SELECT crosstab(sex) FROM lung\n"
        "         ^",
    ),
    (
        "SELECT crosstab(sex, status) FROM lung GROUP BY sex",
        "crosstab(a, b) already groups by its two columns: remove GROUP BY "
        "(column 40)\n"
        "  SELECT crosstab(sex, status) FROM lung GROUP BY sex\n"
        "                                         ^",
    ),
    (
        "SELECT count(*),\n       mean(wt.los)\nFROM lung",
        "unknown column 'wt.los' in dataset 'lung' (did you mean 'wt.loss'?) "
        "(line 2, column 13)\n"
        "         mean(wt.los)\n"
        "              ^",
    ),
    ("   ", "the query is empty; start with SELECT"),
]


@pytest.mark.parametrize(("query", "expected"), INVALID)
def test_invalid_query_message(query, expected):
    with pytest.raises(QueryError) as caught:
        parse_query(query, SCHEMAS)
    assert str(caught.value) == expected


def test_error_position_counts_from_caller_text():
    query = "\n  SELECT mean(agee) FROM lung"
    with pytest.raises(QueryError) as caught:
        parse_query(query, SCHEMAS)
    assert caught.value.position == query.index("agee")
    assert caught.value.line == 2
    assert caught.value.column == len("  SELECT mean(") + 1


def test_query_without_schemas_skips_column_checks():
    spec = parse_query("SELECT mean(anything) FROM unknown GROUP BY other")
    assert spec.dataset == "unknown"
    assert spec.group_by == ["other"]
